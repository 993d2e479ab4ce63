"""OME-Zarr in (NGFF 0.4 on zarr v2, 0.5 on zarr v3: axes and scale from the metadata) and out (0.4).

The input files are written here with zarr itself, the way OME-Zarr writers lay them out,
so the reader is tested against the format and not against our own writer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_dem.cli import main
from napari_dem.data.synthetic import synthetic_nuclei
from napari_dem.io import open_image, read_image, read_record, write_array

NAMES = {
    "T": ("t", "time"),
    "C": ("c", "channel"),
    "Z": ("z", "space"),
    "Y": ("y", "space"),
    "X": ("x", "space"),
}


def write_ngff(path: Path, levels: list[np.ndarray], axes: str, scale: list[float], version: str) -> Path:
    """An OME-Zarr image with ``levels`` (each downsampled 2x in Y X) in NGFF ``version``."""
    fmt = 2 if version == "0.4" else 3
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt)
    datasets = []
    for i, data in enumerate(levels):
        group.create_array(str(i), data=data, chunks=data.shape)
        factor = [2.0**i if a in "YX" else 1.0 for a in axes]
        datasets.append(
            {"path": str(i), "coordinateTransformations": [
                {"type": "scale", "scale": [s * f for s, f in zip(scale, factor, strict=True)]}
            ]}
        )  # fmt: skip
    ngff_axes = [
        {"name": NAMES[a][0], "type": NAMES[a][1], **({"unit": "micrometer"} if a in "ZYX" else {})}
        for a in axes
    ]
    multiscale = {"axes": ngff_axes, "datasets": datasets, "name": "img"}
    if version == "0.4":
        group.attrs["multiscales"] = [{"version": "0.4", **multiscale}]
    else:
        group.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}
    return path


def _tczyx() -> np.ndarray:
    """2 frames x 2 channels x 6 slices: a 5D stack a guess would read as T Z C Y X."""
    vol = synthetic_nuclei((6, 32, 32), noise="low", radius=(4.0, 6.0), seed=4)[0]
    return np.stack([np.stack([vol, vol // 2]), np.stack([vol, vol // 2])])


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_axes_and_scale_come_from_the_multiscale_metadata(tmp_path: Path, version: str) -> None:
    data = _tczyx()
    path = write_ngff(
        tmp_path / "img.ome.zarr", [data, data[..., ::2, ::2]], "TCZYX", [60, 1, 2, 0.5, 0.5], version
    )
    image = open_image(path)
    assert image.axes == "TCZYX" and image.data.shape == data.shape
    assert image.scale == {"T": 60.0, "Z": 2.0, "Y": 0.5, "X": 0.5}
    low = open_image(path, level=1)
    assert low.data.shape == (2, 2, 6, 16, 16) and low.scale["X"] == 1.0
    assert read_image(path)[1] == "TCZYX"  # the old two-value reader gets the axes too
    with pytest.raises(ValueError, match=r"levels 0\.\.1"):
        open_image(path, level=2)


def test_5d_tczyx_input_is_segmented_per_channel_axes_not_guessed(tmp_path: Path, tiny_model) -> None:
    from napari_dem.core.model import save_model

    model = str(save_model(tiny_model, tmp_path / "tiny.pt"))
    data = _tczyx()
    src = write_ngff(tmp_path / "img.ome.zarr", [data], "TCZYX", [1, 1, 2, 0.5, 0.5], "0.4")
    out = tmp_path / "labels.tif"
    assert main(["segment", str(src), "-o", str(out), "--model", model, "--clusters", "2", "-q"]) == 0
    labels, axes = read_image(out)
    assert axes == "TZYX" and labels.shape == (2, 6, 32, 32)  # C was taken as channels
    record = read_record(out)
    assert record["scale"] == {"T": 1.0, "Z": 2.0, "Y": 0.5, "X": 0.5}
    # the explicit option wins over the file, axis by axis
    out2 = tmp_path / "labels2.tif"
    args = [
        "segment",
        str(src),
        "-o",
        str(out2),
        "--model",
        model,
        "--clusters",
        "2",
        "--scale",
        "3,1,1",
        "-q",
    ]
    assert main(args) == 0
    assert read_record(out2)["scale"] == {"T": 1.0, "Z": 3.0, "Y": 1.0, "X": 1.0}


def test_ome_zarr_output_is_ngff_04_with_axes_scale_and_record(tmp_path: Path) -> None:
    img = synthetic_nuclei((48, 48), seed=2)[0]
    src = write_array(tmp_path / "img.tif", img, axes="YX", scale=(0.3, 0.4))
    out = tmp_path / "labels.ome.zarr"
    assert main(["segment", str(src), "-o", str(out), "-q"]) == 0
    attrs = json.loads((out / ".zattrs").read_text())
    (multiscale,) = attrs["multiscales"]
    assert multiscale["version"] == "0.4"
    assert [a["name"] for a in multiscale["axes"]] == ["y", "x"]
    assert multiscale["datasets"][0]["coordinateTransformations"] == [{"type": "scale", "scale": [0.3, 0.4]}]
    assert json.loads((out / "0" / ".zarray").read_text())["dimension_separator"] == "/"
    assert attrs["napari-dem"]["scale"] == {"Y": 0.3, "X": 0.4}  # the TIFF's scale, read back
    back = open_image(out)
    assert back.axes == "YX" and back.scale == {"Y": 0.3, "X": 0.4}
    k = attrs["napari-dem"]["n_clusters"]
    assert np.asarray(back.data).shape == img.shape and set(np.unique(back.data)) <= set(range(k + 1))


def test_folder_batch_writes_ome_zarr_names(tmp_path: Path, tiny_model) -> None:
    from napari_dem.core.model import save_model

    model = save_model(tiny_model, tmp_path / "tiny.pt")
    folder = tmp_path / "in"
    folder.mkdir()
    write_ngff(folder / "a.ome.zarr", [synthetic_nuclei((40, 40), seed=1)[0]], "YX", [0.7, 0.7], "0.5")
    out_dir = tmp_path / "out"
    assert (
        main(
            ["segment", str(folder), "-o", str(out_dir), "--format", ".ome.zarr", "--model", str(model), "-q"]
        )
        == 0
    )
    written = out_dir / "a_labels.ome.zarr"
    assert sorted(p.name for p in out_dir.iterdir()) == [written.name]
    assert open_image(written).scale == {"Y": 0.7, "X": 0.7}
    assert read_record(written)["source"] == str(folder / "a.ome.zarr")
