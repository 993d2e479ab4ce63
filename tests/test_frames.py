"""Time-lapse frames brought to one brightness (core/frames.py): the lazy view against the
eager map, the guards (steady movies and empty frames left alone), and what a default run
makes of a bleaching movie, a reporter turning on and a movie with an empty frame."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import tifffile

from napari_dem.api import segment_image
from napari_dem.cli import main
from napari_dem.core import frames
from napari_dem.core.errors import InputError
from napari_dem.core.frames import FrameView, find_frame_match, noise_sd
from napari_dem.core.layout import parse_axes
from napari_dem.core.metrics import instance_f1
from napari_dem.core.segmenter import DEMSegmenter
from napari_dem.data.families import objects_image

SHAPE = (128, 128)


def _movie(levels, seed: int = 40, shape=SHAPE) -> tuple[np.ndarray, list[np.ndarray]]:
    """Frames of nuclei (TYX float32) scaled by ``levels``; a level of None is an empty frame
    (the first frame's background, drawn again)."""
    frames, truths = [], []
    for t, level in enumerate(levels):
        img, truth = objects_image(shape, seed=seed + t)
        if level is None:
            rng = np.random.default_rng(seed + 100 + t)
            bg = frames[0][truths[0] == 0] if frames else img[truth == 0]
            img, truth = rng.normal(bg.mean(), bg.std(), shape).astype(np.float32), np.zeros_like(truth)
        else:
            img = img * level
        frames.append(img.astype(np.float32))
        truths.append(truth)
    return np.stack(frames), truths


def test_noise_sd_is_the_noise_of_a_flat_field_and_ignores_edges():
    rng = np.random.default_rng(0)
    flat = rng.normal(5.0, 0.3, (200, 200))
    assert noise_sd(flat) == pytest.approx(0.3, rel=0.05)
    stepped = flat + 10.0 * (np.arange(200) >= 100)  # one sharp edge down the middle
    assert noise_sd(stepped) == pytest.approx(0.3, rel=0.05)
    assert noise_sd(np.ones((8, 8))) == 0.0


def test_a_steady_movie_and_a_single_frame_are_left_as_they_are():
    movie, _ = _movie([1.0, 1.0, 1.0])
    assert find_frame_match(movie, parse_axes("TYX", movie.shape)) is None
    assert find_frame_match(movie[0], parse_axes("YX", movie[0].shape)) is None
    assert find_frame_match(movie[:1], parse_axes("TYX", movie[:1].shape)) is None


def test_bleached_frames_are_brought_to_the_median_range_and_an_empty_one_is_not_touched():
    movie, _ = _movie([1.0, 0.7, None, 0.45, 0.3])
    match = find_frame_match(movie, parse_axes("TYX", movie.shape))
    assert match is not None and match.gain.shape == (5, 1)
    assert match.gain[2, 0] == 1.0 and match.shift[2, 0] == 0.0  # the empty frame
    lo, hi = (np.array([np.percentile(f, q) for f in movie]) for q in (1.0, 99.8))
    mapped = hi * match.gain[:, 0] + match.shift[:, 0] - (lo * match.gain[:, 0] + match.shift[:, 0])
    signal = [0, 1, 3, 4]
    assert np.ptp(mapped[signal]) < 0.05 * mapped[signal].mean()  # one range for every frame
    assert match.gain[4, 0] > 2.5 * match.gain[0, 0]  # the most bleached frame gained the most
    assert "time-lapse frames" in match.note()


def test_frames_between_the_probed_ones_get_maps_interpolated_between_theirs(monkeypatch):
    base, _ = objects_image(SHAPE, seed=40)
    movie = np.stack([base * 0.7**t for t in range(5)])  # one field bleaching by 30 % a frame
    layout = parse_axes("TYX", movie.shape)
    every = find_frame_match(movie, layout)
    monkeypatch.setattr(frames, "PROBED_FRAMES", 3)  # frames 0, 2 and 4 measured
    some = find_frame_match(movie, layout)
    assert every is not None and some is not None
    np.testing.assert_allclose(some.gain[[0, 2, 4]], every.gain[[0, 2, 4]], rtol=1e-5)
    for t in (1, 3):  # the unmeasured frames: a geometric decay is interpolated exactly
        assert some.gain[t, 0] == pytest.approx(every.gain[t, 0], rel=0.01)
        assert some.gain[t, 0] == pytest.approx(some.gain[t - 1, 0] / 0.7, rel=0.01)


@pytest.mark.parametrize(
    "axes, index",
    [
        ("TCYX", ()),
        ("TCYX", (1,)),
        ("TCYX", (slice(1, 3), 0, slice(5, 40))),
        ("TCYX", (Ellipsis, slice(0, 9))),
        ("CTYX", (slice(None), slice(0, 4, 2))),
        ("CTYX", (1, 2)),
        ("TYXC", (slice(None), slice(3, 20), 4)),
    ],
)
def test_the_view_reads_each_block_as_the_whole_map_would(axes, index):
    base, _ = _movie([1.0, 0.6, 0.4, 0.25])
    rng = np.random.default_rng(1)
    tcyx = np.stack([base, base * rng.uniform(0.5, 1.5, (4, 1, 1))], axis=1)
    order = ["TCYX".index(a) for a in axes]
    image = np.transpose(tcyx, order)
    layout = parse_axes(axes, image.shape)
    match = find_frame_match(image, layout)
    assert match is not None and match.gain.shape == (4, 2)
    eager = np.transpose(tcyx * match.gain[:, :, None, None] + match.shift[:, :, None, None], order)
    view = FrameView(image, layout, match)
    np.testing.assert_allclose(view[index], eager[index], rtol=1e-5, atol=1e-6)
    assert view.shape == image.shape and np.asarray(view).dtype == np.float32


def _f1s(labels: np.ndarray, truths: list[np.ndarray]) -> list[float]:
    return [instance_f1(labels[t], truths[t]) for t in range(len(truths))]


def test_a_bleaching_movie_is_segmented_in_its_last_frames_as_in_its_first():
    movie, truths = _movie([1.0, 0.75, 0.5, 0.3, 0.2])
    out = segment_image(movie, "TYX", device="cpu", instances=True)
    f1 = _f1s(out.labels, truths)
    raw = _f1s(segment_image(movie, "TYX", device="cpu", instances=True, frames="none").labels, truths)
    assert min(f1) > 0.85, f1
    assert f1[-1] > raw[-1] + 0.1, (f1, raw)  # read as they are, the faded frames lose objects
    assert "time-lapse frames brought to one brightness" in out.semantic.decision.reason


def test_a_reporter_turning_on_is_found_in_its_dim_first_frame():
    movie, truths = _movie([0.15, 0.4, 0.7, 1.0])
    f1 = _f1s(segment_image(movie, "TYX", device="cpu", instances=True).labels, truths)
    assert min(f1) > 0.85, f1


def test_an_empty_frame_in_the_middle_neither_hides_the_objects_nor_gains_any():
    movie, truths = _movie([1.0, 1.0, None, 1.0, 1.0])
    out = segment_image(movie, "TYX", device="cpu", instances=True)
    assert out.semantic.decision.task == "objects"  # was: classes, and no object in any frame
    assert out.labels[2].max() == 0
    f1 = _f1s(out.labels, truths)
    assert min(f1[:2] + f1[3:]) > 0.8, f1


def test_a_lazy_movie_gives_the_labels_of_the_same_movie_in_memory():
    movie, _ = _movie([1.0, 0.6, 0.3])
    eager = segment_image(movie, "TYX", device="cpu").labels
    lazy = segment_image(da.from_array(movie, chunks=(1, 64, 64)), "TYX", device="cpu").labels
    np.testing.assert_array_equal(np.asarray(lazy), eager)


def test_the_frames_setting_is_checked_and_saved(tmp_path):
    movie, _ = _movie([1.0, 0.5])
    with pytest.raises(InputError, match="frames must be one of auto, none"):
        DEMSegmenter(frames="bleach", device="cpu").fit(movie, "TYX")
    seg = DEMSegmenter(frames="none", device="cpu").fit(movie, "TYX")
    loaded = DEMSegmenter.load(seg.save(tmp_path / "seg.pt"))
    assert loaded.frames == "none"
    np.testing.assert_array_equal(loaded.predict(movie, "TYX"), seg.predict(movie, "TYX"))


def test_the_cli_brings_a_bleaching_movie_to_one_brightness_unless_told_not_to(tmp_path, capsys):
    movie, truths = _movie([1.0, 0.6, 0.35, 0.2])
    src = tmp_path / "movie.tif"
    tifffile.imwrite(src, movie)
    found = {}
    for setting in ("auto", "none"):
        out = tmp_path / f"{setting}.tif"
        args = ["segment", str(src), "-o", str(out), "--axes", "TYX", "--instances", "--frames", setting]
        assert main(args) == 0
        err = capsys.readouterr().err
        found[setting] = ("brought to one brightness" in err, _f1s(tifffile.imread(out), truths)[-1])
    assert found["auto"][0] and not found["none"][0]
    assert found["auto"][1] > 0.85 and found["auto"][1] > found["none"][1] + 0.1, found


def test_a_black_dropped_frame_stays_out_of_the_fit(monkeypatch):
    from napari_dem.core import segmenter

    movie, truths = _movie([1.0] * 8, shape=(256, 256), seed=70)
    movie[0], truths[0] = 0.0, np.zeros_like(truths[0])  # the shutter opened late

    def mean_f1() -> float:
        out = segment_image(movie, "TYX", device="cpu", instances=True)
        assert out.semantic.decision.task == "objects" and out.labels[0].max() == 0
        return float(np.mean(_f1s(out.labels, truths)[1:]))

    left_out = mean_f1()
    monkeypatch.setattr(segmenter, "BLANK_SPREAD", 0.0)  # the black frame joins the fit
    assert left_out > mean_f1() + 0.02
