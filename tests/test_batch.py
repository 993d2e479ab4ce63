"""Batch segmentation: bounded memory on lazy stacks, one mixture per stack, resume, failures, dask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_dem.batch import (
    BatchSettings,
    BatchSummary,
    batch_segment,
    expand_inputs,
    output_path,
    segment_to_zarr,
)
from napari_dem.cli import main
from napari_dem.core.errors import InputError
from napari_dem.core.progress import CancelToken
from napari_dem.data.synthetic import synthetic_nuclei
from napari_dem.io import read_image


@pytest.fixture
def model_file(tmp_path: Path, tiny_model) -> str:
    from napari_dem.core.model import save_model

    return str(save_model(tiny_model, tmp_path / "tiny.pt"))


def _images(folder: Path, n: int, size: int = 64) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img, _ = synthetic_nuclei((size, size), seed=i)
        path = folder / f"img{i}.tif"
        tifffile.imwrite(path, img)
        paths.append(path)
    return paths


def test_expand_inputs_and_output_names(tmp_path: Path) -> None:
    paths = _images(tmp_path / "in", 3)
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    assert expand_inputs([str(tmp_path / "in")]) == paths
    assert expand_inputs([str(tmp_path / "in" / "img*.tif")]) == paths
    assert expand_inputs([str(paths[1]), str(tmp_path / "in")]) == [paths[1], paths[0], paths[2]]
    with pytest.raises(ValueError, match="no image matches"):
        expand_inputs([str(tmp_path / "in" / "*.npy")])
    with pytest.raises(FileNotFoundError):
        expand_inputs([str(tmp_path / "missing.tif")])
    assert output_path(Path("a/b.ome.tif"), tmp_path, ".zarr") == tmp_path / "b_labels.zarr"
    assert BatchSummary(["a", "b", "c"], ["d"], [("e", "x")]).line() == (
        "3 done, 1 skipped (already there), 1 failed"
    )


class _CountingArray:
    """A lazy array that records how many elements each read returned."""

    def __init__(self, data) -> None:
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.reads: list[int] = []

    def __getitem__(self, index):
        block = np.asarray(self.data[index])
        self.reads.append(block.size)
        return block


@pytest.mark.slow
def test_lazy_stack_is_never_materialised(tmp_path: Path, tiny_model, model_file: str) -> None:
    """A dask stack generated frame by frame is segmented into zarr one tile at a time."""
    import dask.array as da

    from napari_dem.core.segment import segment

    n, side = 36, 256  # over the core's 2 M-value sample cap, so the sample is strided
    base, _ = synthetic_nuclei((side, side), seed=3)
    base = base.astype(np.float32)

    def frame(block_info=None):
        t = block_info[None]["chunk-location"][0]
        return np.roll(base, 3 * t, axis=1)[np.newaxis]

    stack = da.map_blocks(frame, dtype=np.float32, chunks=((1,) * n, (side,), (side,)))
    lazy = _CountingArray(stack)
    settings = BatchSettings(n_clusters=3, axes="TYX", model=model_file, device="cpu", tile_size=128)
    out = segment_to_zarr(lazy, tmp_path / "lazy_labels.zarr", settings)
    # Each frame's brightness probed (a strided sample and a central crop: core/frames.py),
    # one strided normalisation sample (capped by the core at 2 M values, here 1/8 of the
    # stack), then tiles with their halo: never a whole frame, let alone the stack.
    probes, (sample, *tiles) = lazy.reads[: 2 * n], lazy.reads[2 * n :]
    assert max(probes) <= side * side // 4
    assert sample <= stack.size // 8
    assert len(tiles) >= n * 4 and max(tiles) < side * side
    labels, _ = read_image(out)
    expected = segment(
        np.asarray(stack), "TYX", model=tiny_model, n_clusters=3, device="cpu", tile_size=128
    ).labels
    assert np.array_equal(np.asarray(labels), expected)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_one_mixture_for_the_whole_stack(tmp_path: Path) -> None:
    img, _ = synthetic_nuclei((64, 64), seed=5)
    img = img.astype(np.float32)
    stack = np.stack([img, img, img * 1.5])
    out = segment_to_zarr(stack, tmp_path / "s_labels.zarr", BatchSettings(axes="TYX", device="cpu"))
    labels = np.asarray(read_image(out)[0])
    assert labels.shape == stack.shape
    assert np.array_equal(labels[0], labels[1])  # identical frames, identical labels
    for t in range(3):
        ids = [k for k in range(1, 4) if (labels[t] == k).any()]
        means = [stack[t][labels[t] == k].mean() for k in ids]
        assert means == sorted(means)  # ids ordered by intensity in every frame
    # The brighter frame's foreground is at least as large: the same mixture, not a re-fit.
    assert (labels[2] > 1).sum() >= (labels[0] > 1).sum()


def test_instances_to_zarr_match_the_api(tmp_path: Path) -> None:
    from napari_dem.api import segment_image

    img, _ = synthetic_nuclei((64, 64), seed=7)
    stack = np.stack([img, img[::-1]])
    settings = BatchSettings(axes="TYX", instances=True, device="cpu")
    out = segment_to_zarr(stack, tmp_path / "i_labels.zarr", settings)
    got = np.asarray(read_image(out)[0])
    want = segment_image(stack, "TYX", instances=True, device="cpu").labels
    assert np.array_equal(got, want)
    with pytest.raises(FileExistsError):
        segment_to_zarr(stack, out, settings)


def test_resume_after_a_kill_recomputes_only_the_missing(tmp_path: Path, model_file: str) -> None:
    paths = _images(tmp_path / "in", 3)
    out_dir = tmp_path / "out"
    settings = BatchSettings(model=model_file, device="cpu")
    first = batch_segment(paths, out_dir, settings)
    assert len(first.done) == 3 and not first.failed
    outs = [output_path(p, out_dir, ".tif") for p in paths]
    before = {o: o.stat().st_mtime_ns for o in outs}
    # Simulate a run killed while writing the second output: only its temp is there.
    outs[1].unlink()
    (out_dir / ".img1_labels.part.tif").write_bytes(b"half a file")
    second = batch_segment(paths, out_dir, settings)
    assert second.done == [str(paths[1])] and second.skipped == [str(paths[0]), str(paths[2])]
    for o in (outs[0], outs[2]):
        assert o.stat().st_mtime_ns == before[o]
    assert tifffile.imread(outs[1]).shape == (64, 64)
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(o.name for o in outs)  # no temp left
    third = batch_segment(paths, out_dir, settings, overwrite=True)
    assert len(third.done) == 3


def test_corrupt_file_is_reported_and_the_rest_done(tmp_path: Path, model_file: str) -> None:
    folder = tmp_path / "in"
    _images(folder, 2)
    (folder / "x.tif").write_bytes(b"\x00garbage" * 50)
    np.save(folder / "flat.npy", np.full((64, 64), 7.0))
    messages: list[str] = []
    summary = batch_segment(
        expand_inputs([str(folder)]),
        tmp_path / "out",
        BatchSettings(model=model_file, device="cpu"),
        progress=lambda d, t, m: messages.append(m),
    )
    assert len(summary.done) == 2
    failed = dict(summary.failed)
    assert set(failed) == {str(folder / "x.tif"), str(folder / "flat.npy")}
    assert "constant" in failed[str(folder / "flat.npy")]
    assert all("\n" not in r for r in failed.values())
    assert summary.line() == "2 done, 0 skipped (already there), 2 failed"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img0_labels.tif", "img1_labels.tif"]
    assert any("x.tif: failed" in m for m in messages)


def test_cancel_stops_and_leaves_no_partial_output(tmp_path: Path, model_file: str) -> None:
    paths = _images(tmp_path / "in", 3)
    token = CancelToken()

    def progress(done, total, message):
        if done == 1 and "done" in message:
            token.cancel()

    summary = batch_segment(
        paths,
        tmp_path / "out",
        BatchSettings(model=model_file, device="cpu"),
        progress=progress,
        cancel=token,
    )
    assert summary.cancelled and len(summary.done) == 1
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["img0_labels.tif"]
    # Cancelled inside a file: the core raises, the temp is removed.
    token2 = CancelToken()

    def file_progress(done, total, message):
        token2.cancel()

    summary = batch_segment(
        paths,
        tmp_path / "out2",
        BatchSettings(model=model_file, device="cpu", out_format=".zarr"),
        cancel=token2,
        file_progress=file_progress,
    )
    assert summary.cancelled and not summary.done
    assert list((tmp_path / "out2").iterdir()) == []


@pytest.mark.timeout(300)
def test_shared_mixture_is_fitted_on_files_spread_over_the_inputs(tmp_path: Path, model_file: str) -> None:
    """fit_shared picks files evenly over the list (the first and the last with max_files=2) and
    is the segmenter fitted on exactly those; no file is an error."""
    from napari_dem.batch import fit_shared
    from napari_dem.core.segmenter import DEMSegmenter

    paths = _images(tmp_path / "in", 3)
    settings = BatchSettings(model=model_file, device="cpu", n_clusters=3)
    shared = fit_shared(paths, settings, max_files=2)
    first_last = [tifffile.imread(paths[0]), tifffile.imread(paths[2])]
    ref = DEMSegmenter(model=model_file, n_clusters=3, device="cpu").fit(first_last, "YX")
    middle = tifffile.imread(paths[1])
    np.testing.assert_array_equal(shared.predict(middle, "YX"), ref.predict(middle, "YX"))
    with pytest.raises(InputError, match="no files"):
        fit_shared([], settings)


@pytest.mark.slow
def test_local_cluster_equals_local(tmp_path: Path, model_file: str) -> None:
    from distributed import LocalCluster

    paths = _images(tmp_path / "in", 2)
    settings = BatchSettings(model=model_file, device="cpu")
    local = batch_segment(paths, tmp_path / "local", settings)
    cluster = LocalCluster(  # one worker process: the files still travel to another process
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    try:
        remote = batch_segment(paths, tmp_path / "dask", settings, scheduler=cluster.scheduler_address)
    finally:
        cluster.close()
    assert remote.done == local.done == [str(p) for p in paths]
    for p in paths:
        a = tifffile.imread(output_path(p, tmp_path / "local", ".tif"))
        b = tifffile.imread(output_path(p, tmp_path / "dask", ".tif"))
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_cli_folder_to_directory_with_summary(tmp_path: Path, model_file: str, capsys) -> None:
    folder = tmp_path / "in"
    _images(folder, 2)
    out = tmp_path / "out"
    assert main(["segment", str(folder), "-o", str(out), "--model", model_file, "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "napari-dem: 2 done, 0 skipped, 0 failed" in err
    assert sorted(p.name for p in out.iterdir()) == ["img0_labels.tif", "img1_labels.tif"]
    # Rerun with a corrupt file added: the finished ones are skipped, the corrupt one fails -> exit 1.
    (folder / "x.tif").write_bytes(b"garbage")
    assert main(["segment", str(folder / "*.tif"), "-o", str(out), "--model", model_file, "-q"]) == 1
    err = capsys.readouterr().err
    assert "napari-dem: 0 done, 2 skipped, 1 failed" in err
    assert "x.tif: failed:" in err
    # Bad arguments are still exit 2.
    assert main(["segment", str(folder / "*.npy"), "-o", str(out), "-q"]) == 2
    assert main(["segment", str(folder), "-o", str(out), "--overlay", "o.png", "-q"]) == 2


def test_streamed_and_in_memory_instances_agree_on_a_z_stack_in_2d_mode(tmp_path: Path, nuclei3d) -> None:
    """One rule for instances: connected across Z whenever there is a Z axis, whatever the mode.

    The zarr path used to split a Z stack segmented in 2D mode slice by slice while the
    in-memory path connected the slices."""
    from napari_dem.api import segment_image

    img, _ = nuclei3d
    settings = BatchSettings(axes="ZYX", mode="2d", instances=True, device="cpu")
    out = segment_to_zarr(img, tmp_path / "z_labels.zarr", settings)
    streamed = np.asarray(read_image(out)[0])
    in_memory = segment_image(img, "ZYX", mode="2d", instances=True, device="cpu").labels
    assert np.array_equal(streamed, in_memory)
    # connected across Z: some object spans several slices
    spans = [len(np.unique(np.nonzero(streamed == i)[0])) for i in np.unique(streamed)[1:]]
    assert max(spans) > 3


def test_a_model_saved_again_under_the_same_name_is_reloaded(tmp_path: Path, tiny_model) -> None:
    """The per-process model cache is keyed by the file's path, modification time and size."""
    import os

    import torch

    from napari_dem.batch import _model_for
    from napari_dem.core.model import save_model

    path = save_model(tiny_model, tmp_path / "m.pt")
    settings = BatchSettings(model=str(path), device="cpu")
    first = _model_for(settings, 2)
    assert _model_for(settings, 2) is first  # cached
    with torch.no_grad():
        for p in tiny_model.parameters():
            p.add_(1.0)
    save_model(tiny_model, path)  # a new fine-tune saved under the same name
    later = os.stat(path).st_mtime_ns + 10**9  # as a save a second later (coarse file-system clocks)
    os.utime(path, ns=(later, later))
    second = _model_for(settings, 2)
    assert second is not first
    w = next(iter(tiny_model.state_dict()))
    assert torch.equal(second.state_dict()[w], tiny_model.state_dict()[w])
