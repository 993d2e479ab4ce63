"""Every label file says how it was made and at what scale, and ``napari-dem info`` prints it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

import napari_dem
from napari_dem.batch import BatchSettings, segment_to_zarr
from napari_dem.cli import main
from napari_dem.data.synthetic import synthetic_nuclei
from napari_dem.io import read_record, write_array
from napari_dem.provenance import DEFAULT_MODEL, RECORD_KEY, resolve_scale


@pytest.fixture
def model_file(tmp_path: Path, tiny_model) -> Path:
    from napari_dem.core.model import save_model

    return save_model(tiny_model, tmp_path / "tiny.pt")


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, synthetic_nuclei((64, 64), seed=3)[0])
    return path


def test_tiff_output_records_model_settings_command_and_pixel_size(
    tmp_path: Path, image_file: Path, model_file: Path, capsys
) -> None:
    out = tmp_path / "labels.tif"
    args = ["segment", str(image_file), "-o", str(out), "--model", str(model_file)]
    args += ["--clusters", "2", "--seed", "5", "--scale", "0.25,0.5", "--instances", "-q"]
    assert main(args) == 0
    record = read_record(out)
    assert record["version"] == napari_dem.__version__ and record["software"] == "napari-dem"
    assert record["model"] == {
        "path": str(model_file.resolve()),
        "sha256": hashlib.sha256(model_file.read_bytes()).hexdigest(),
    }
    assert (record["n_clusters"], record["mode"], record["seed"], record["task"]) == (2, "2d", 5, "instances")
    assert record["axes"] == "YX" and record["scale"] == {"Y": 0.25, "X": 0.5}
    assert record["command"].startswith("napari-dem segment ") and "--seed 5" in record["command"]
    with tifffile.TiffFile(out) as tif:
        x_res, y_res = tif.pages[0].resolution  # pixels per cm; 1 cm = 1e4 um
        assert (1e4 / y_res, 1e4 / x_res) == pytest.approx((0.25, 0.5))
        assert tif.shaped_metadata[0]["scale"] == [0.25, 0.5]
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "n_clusters: 2" in printed and "model.sha256: " + record["model"]["sha256"] in printed
    assert "scale.X: 0.5" in printed and "axes: YX" in printed
    assert main(["info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["seed"] == 5


def test_zarr_output_keeps_the_record_in_zattrs_and_names_the_default_model(
    tmp_path: Path, image_file: Path
) -> None:
    out = tmp_path / "labels.zarr"
    assert main(["segment", str(image_file), "-o", str(out), "-q"]) == 0
    attrs = json.loads((out / ".zattrs").read_text())
    record = attrs[RECORD_KEY]
    assert record["model"]["path"] == DEFAULT_MODEL and record["model"]["file"] == "dem2d.pt"
    assert record["task"] == "semantic" and record["scale"] is None and record["decision"]
    labels = np.asarray(zarr.open_array(str(out), mode="r"))
    assert record["n_clusters"] >= 2 and labels.max() <= record["n_clusters"]  # K as the fit chose it


def test_batch_and_streamed_outputs_carry_the_record(tmp_path: Path, model_file: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        tifffile.imwrite(folder / f"img{i}.tif", synthetic_nuclei((48, 48), seed=i)[0])
    out_dir = tmp_path / "out"
    assert (
        main(["segment", str(folder), "-o", str(out_dir), "--model", str(model_file), "--scale", "2", "-q"])
        == 0
    )
    for i in range(2):
        record = read_record(out_dir / f"img{i}_labels.tif")
        assert record["source"] == str(folder / f"img{i}.tif") and record["scale"] == {"Y": 2.0, "X": 2.0}
        assert record["command"].startswith("napari-dem segment")
    stack = np.stack([synthetic_nuclei((48, 48), seed=s)[0] for s in (1, 2)])
    settings = BatchSettings(axes="TYX", model=str(model_file), scale=(0.5,), record={"note": "mine"})
    out = segment_to_zarr(stack, tmp_path / "stack_labels.zarr", settings, source="stack")
    record = read_record(out)
    assert record["note"] == "mine" and record["axes"] == "TYX" and record["source"] == "stack"
    assert record["scale"] == {"T": 1.0, "Y": 0.5, "X": 0.5}  # the scale the file was written with
    assert zarr.open_array(str(out), mode="r").attrs["scale"] == [1.0, 0.5, 0.5]


def test_info_on_a_file_without_a_record_says_so(tmp_path: Path, capsys) -> None:
    path = write_array(tmp_path / "plain.tif", np.zeros((8, 8), np.uint8))
    assert main(["info", str(path)]) == 1
    assert "no napari-dem record" in capsys.readouterr().err


def test_scale_precedence_is_explicit_then_file_then_layer() -> None:
    file_scale, layer_scale = {"T": 60.0, "Z": 3.0, "Y": 0.4}, {"Z": 9.0, "Y": 9.0, "X": 0.7}
    assert resolve_scale("TZYX", from_file=file_scale, from_layer=layer_scale) == {
        "T": 60.0, "Z": 3.0, "Y": 0.4, "X": 0.7,
    }  # fmt: skip
    explicit = resolve_scale("TZCYX", explicit=(2.0, 0.5, 0.5), from_file=file_scale, from_layer=layer_scale)
    assert explicit == {"T": 60.0, "Z": 2.0, "Y": 0.5, "X": 0.5}
    assert resolve_scale("YX") is None
    with pytest.raises(ValueError, match="2 spatial axes"):
        resolve_scale("YX", explicit=(1.0, 2.0, 3.0))


def test_wrong_scale_is_a_one_line_error(tmp_path: Path, image_file: Path, capsys) -> None:
    assert main(["segment", str(image_file), "-o", str(tmp_path / "x.tif"), "--scale", "1,2,3", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("napari-dem: error:") and "3 values" in err and "\n" not in err
    assert not (tmp_path / "x.tif").exists()


def test_imagej_tiff_pixel_size_is_file_metadata(tmp_path: Path) -> None:
    from napari_dem.io import open_image

    path = tmp_path / "fiji.tif"
    stack = np.zeros((3, 16, 16), np.uint8)
    tifffile.imwrite(
        path,
        stack,
        imagej=True,
        resolution=(1 / 0.2, 1 / 0.1),
        metadata={"spacing": 1.5, "unit": "um", "axes": "ZYX"},
    )
    image = open_image(path)
    assert image.axes == "ZYX" and image.scale == pytest.approx({"Z": 1.5, "Y": 0.1, "X": 0.2})
