"""The ``napari-dem`` command line: file round trips, the options' contract, bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_dem.cli import main
from napari_dem.io import read_image, write_array


@pytest.fixture
def image_file(tmp_path: Path, nuclei2d) -> Path:
    path = tmp_path / "img.tif"
    tifffile.imwrite(path, nuclei2d[0])
    return path


@pytest.mark.parametrize("suffix", [".tif", ".tiff", ".npy", ".zarr", ".png"])
def test_round_trip_for_each_file_type(tmp_path: Path, nuclei2d, suffix: str) -> None:
    img = (nuclei2d[0] // 256).astype(np.uint8) if suffix == ".png" else nuclei2d[0]
    src = write_array(tmp_path / f"in{suffix}", img)
    out = tmp_path / f"out{suffix}"
    assert main(["segment", str(src), "-o", str(out), "--clusters", "3", "--task", "classes", "-q"]) == 0
    labels, _ = read_image(out)
    labels = np.asarray(labels)
    assert labels.shape == img.shape
    assert set(np.unique(labels)) == {1, 2, 3}
    # Same result as the Python API on the same data.
    from napari_dem.api import segment_image

    api = segment_image(img, "YX", n_clusters=3, task="classes", device="cpu").labels
    assert np.array_equal(labels, api)


def test_instances_and_overlay(tmp_path: Path, image_file: Path, nuclei2d) -> None:
    from napari_dem.core.metrics import instance_f1

    out, png = tmp_path / "inst.tif", tmp_path / "overlay.png"
    assert main(["segment", str(image_file), "-o", str(out), "--instances", "--overlay", str(png), "-q"]) == 0
    inst = tifffile.imread(out)
    assert inst.max() > 5 and instance_f1(inst, nuclei2d[1]) > 0.6
    rgb, _ = read_image(png)
    assert rgb.shape == (*inst.shape, 3) and rgb.dtype == np.uint8


def test_background_brightest_inverts_the_foreground(tmp_path: Path, image_file: Path) -> None:
    dark = tmp_path / "dark.npy"
    bright = tmp_path / "bright.npy"
    assert main(["segment", str(image_file), "-o", str(dark), "--instances", "-q"]) == 0
    assert (
        main(
            ["segment", str(image_file), "-o", str(bright), "--instances", "--background", "brightest", "-q"]
        )
        == 0
    )
    a, b = np.load(dark) > 0, np.load(bright) > 0
    assert a.mean() < 0.5 < b.mean()


def test_several_inputs_go_to_a_directory(tmp_path: Path, nuclei2d) -> None:
    a = write_array(tmp_path / "a.npy", nuclei2d[0])
    b = write_array(tmp_path / "b.tif", nuclei2d[0][::-1])
    outdir = tmp_path / "out"
    assert main(["segment", str(a), str(b), "-o", str(outdir), "-q"]) == 0
    assert sorted(p.name for p in outdir.iterdir()) == ["a_labels.tif", "b_labels.tif"]


def test_existing_output_is_refused_then_overwritten(tmp_path: Path, image_file: Path, capsys) -> None:
    out = tmp_path / "out.tif"
    out.write_bytes(b"precious")
    assert main(["segment", str(image_file), "-o", str(out), "-q"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert main(["segment", str(image_file), "-o", str(out), "-q", "--overwrite"]) == 0
    assert tifffile.imread(out).shape == (128, 128)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda d: d / "x.bmp", [], "unsupported file type"),
        (lambda d: d / "missing.tif", [], "no such file"),
        (lambda d: write_array(d / "c.npy", np.full((32, 32), 3.0)), [], "constant"),
        (lambda d: write_array(d / "n.npy", np.where(np.eye(32) > 0, np.nan, 1.0)), [], "NaN"),
        (lambda d: write_array(d / "e.npy", np.zeros((0, 32))), [], "empty"),
        (lambda d: write_array(d / "t.npy", np.random.default_rng(0).random((6, 6))), [], "too small"),
        (
            lambda d: write_array(d / "k.npy", np.random.default_rng(0).random((32, 32))),
            ["--clusters", "1"],
            "at least 2",
        ),
        (lambda d: write_array(d / "b.npy", np.tile([0.0, 1.0], (32, 16))), ["--clusters", "4"], "distinct"),
        (
            lambda d: write_array(d / "a.npy", np.random.default_rng(0).random((32, 32))),
            ["--axes", "ZYX"],
            "3 letters",
        ),
        (
            lambda d: write_array(d / "m.npy", np.random.default_rng(0).random((32, 32))),
            ["--model", "/nope.pt"],
            "not found",
        ),
        (
            lambda d: write_array(d / "g.npy", np.random.default_rng(0).random((32, 32))),
            ["--background", "7", "--clusters", "3"],
            "must lie in 1..3",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, make, args, message, capsys) -> None:
    src = make(tmp_path)
    out = tmp_path / "out.tif"
    assert main(["segment", str(src), "-o", str(out), "-q", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("napari-dem: error:") and message in err and "\n" not in err
    assert not out.exists()


def test_corrupt_model_file(tmp_path: Path, image_file: Path, capsys) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    assert main(["segment", str(image_file), "-o", str(tmp_path / "o.tif"), "--model", str(bad), "-q"]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err


def test_fine_tune_then_segment_with_the_model(tmp_path: Path, image_file: Path) -> None:
    model = tmp_path / "tuned.pt"
    assert (
        main(
            [
                "fine-tune",
                str(image_file),
                "-o",
                str(model),
                "--steps",
                "3",
                "--patch-size",
                "32",
                "--batch-size",
                "2",
                "-q",
            ]
        )
        == 0
    )
    from napari_dem.core.model import load_model

    meta = load_model(model).metadata
    assert meta["training_steps"] == 3 and "img.tif" in meta["training_images"][0]
    out = tmp_path / "seg.tif"
    args = ["segment", str(image_file), "-o", str(out), "--model", str(model), "--task", "classes"]
    assert main([*args, "--clusters", "3", "-q"]) == 0
    assert tifffile.imread(out).max() == 3
    assert main(["fine-tune", str(image_file), "-o", str(model), "--steps", "1", "-q"]) == 2  # exists


@pytest.mark.slow
def test_console_script_runs_and_reports_progress_on_stderr(tmp_path: Path, image_file: Path) -> None:
    exe = Path(sys.executable).with_name("napari-dem")
    out = tmp_path / "o.npy"
    proc = subprocess.run(
        [str(exe), "segment", str(image_file), "-o", str(out)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and "assigning" in proc.stderr and out.exists()
    # the command exits at once after main() (no interpreter teardown): the output is whole
    again = tmp_path / "again.npy"
    assert main(["segment", str(image_file), "-o", str(again), "-q"]) == 0
    assert np.array_equal(np.load(out), np.load(again))
    # and its exit code is main()'s
    missing = subprocess.run(
        [str(exe), "segment", str(tmp_path / "none.tif"), "-o", str(tmp_path / "n.tif")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 2 and missing.stderr.startswith("napari-dem: error:")


def test_sample_input(tmp_path: Path) -> None:
    out = tmp_path / "s.tif"
    assert main(["segment", "sample:nuclei2d", "-o", str(out), "-q"]) == 0
    assert tifffile.imread(out).shape == (512, 512)


def test_single_zarr_stack_is_written_tile_by_tile(tmp_path: Path, capsys) -> None:
    """A .zarr input to a .zarr output streams (segment_to_zarr): same labels, no temp left."""
    from napari_dem.api import segment_image
    from napari_dem.data.synthetic import synthetic_nuclei

    stack = np.stack([synthetic_nuclei((96, 96), seed=s)[0] for s in (1, 2, 3)])
    src = write_array(tmp_path / "stack.zarr", stack)
    out = tmp_path / "labels.zarr"
    assert main(["segment", str(src), "-o", str(out), "--axes", "TYX", "--instances"]) == 0
    assert "tile by tile" in capsys.readouterr().err
    labels = np.asarray(read_image(out)[0])
    expected = segment_image(stack, "TYX", instances=True, device="cpu")
    assert labels.shape == stack.shape
    assert np.array_equal(labels > 0, expected.labels > 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.zarr", "stack.zarr"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("shape", "axes"),
    [((1500, 1500, 3), None), ((3, 8, 300, 300), "CZYX")],
    ids=["rgb-1500x1500x3", "czyx-3x8x300x300"],
)
def test_large_multichannel_images_segment(tmp_path: Path, shape, axes) -> None:
    """Above ~2 Mpx the normalisation subsample used to stride the channel axis away
    ("size of tensor a (3) must match ... b (2)")."""
    rng = np.random.default_rng(0)
    img = (rng.random(shape) * 50).astype(np.uint8)
    c_axis = 2 if axes is None else 0
    bright = [slice(None)] * len(shape)
    bright[-2 if axes else 0] = slice(100, 300)
    bright[-1 if axes else 1] = slice(100, 300)
    img[tuple(bright)] += 150  # one bright square in every channel
    src, out = tmp_path / "big.tif", tmp_path / "labels.tif"
    tifffile.imwrite(src, img)
    args = ["segment", str(src), "-o", str(out), "-q", "--clusters", "2", "--mode", "2d"]
    # The RGB image is labelled as classes (no network: 3 x 2.25 Mpx of encoding would be most
    # of this test's time); the crash was in the normalisation, which every task runs.
    task = ["--task", "classes"] if axes is None else []
    assert main([*args, *task, *(["--axes", axes] if axes else [])]) == 0
    labels = tifffile.imread(out)
    assert labels.shape == tuple(s for i, s in enumerate(shape) if i != c_axis)
    square = labels[..., 150:250, 150:250]
    assert (square == square.max()).mean() > 0.95  # the square is the brighter cluster


def test_fit_on_labels_every_input_with_one_mixture(tmp_path: Path, nuclei2d) -> None:
    """``--fit-on``: one range and mixture, fitted on some images, label all inputs."""
    from napari_dem import DEMSegmenter

    img = nuclei2d[0].astype(np.float32)
    a, b = write_array(tmp_path / "a.npy", img), write_array(tmp_path / "b.npy", img * 1.6)
    common = ["-q", "--device", "cpu"]
    assert main(["segment", str(a), str(b), "-o", str(tmp_path / "own"), *common]) == 0
    assert main(["segment", str(a), str(b), "-o", str(tmp_path / "one"), "--fit-on", str(a), *common]) == 0
    assert main(["segment", str(b), "-o", str(tmp_path / "b.tif"), "--fit-on", str(a), *common]) == 0
    own_a, own_b, one_a, one_b = (
        tifffile.imread(tmp_path / d / f"{n}_labels.tif")
        for d, n in [s.split() for s in ("own a", "own b", "one a", "one b")]
    )
    expected_b = DEMSegmenter(device="cpu").fit(img, "YX").predict(img * 1.6, "YX")
    assert np.array_equal(one_a, own_a)  # a is the image the mixture was fitted on
    assert np.array_equal(one_b, expected_b) and not np.array_equal(one_b, own_b)
    assert np.array_equal(tifffile.imread(tmp_path / "b.tif"), expected_b)  # the single-file path too


def test_a_torch_error_exits_1_with_one_line_and_a_logged_traceback(
    tmp_path: Path, image_file: Path, capsys, monkeypatch
) -> None:
    """Not a bad input but a failure inside torch (a model built for 2-channel input meets a
    1-channel image): exit code 1, one line that names the log, the traceback in the log."""
    from napari_dem.core.model import DEMConfig, DEMModel, save_model

    log_dir = tmp_path / "logs"
    monkeypatch.setenv("NAPARI_DEM_LOG_DIR", str(log_dir))
    config = DEMConfig(in_channels=2, width=4, latent_dim=2, context_sigma=4.0)
    model = save_model(DEMModel(config), tmp_path / "two_channels.pt")
    args = ["segment", str(image_file), "-o", str(tmp_path / "o.tif"), "--model", str(model), "-q"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("napari-dem: error: RuntimeError:") and str(log_dir) in err
    log = (log_dir / "napari-dem.log").read_text()
    assert "Traceback (most recent call last)" in log and "expected input" in log
    assert not (tmp_path / "o.tif").exists()
    assert main([*args, "--verbose"]) == 1  # --verbose: the traceback on stderr as well
    assert "Traceback (most recent call last)" in capsys.readouterr().err
