"""Brightfield stains read by their haematoxylin (core/stains.py): colour deconvolution against
the Beer-Lambert colours an image was painted with, the lazy view against the eager amount,
and what the default run makes of a glandular H&E (issue 11's H&E case)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_dem.core.layout import parse_axes
from napari_dem.core.metrics import instance_f1
from napari_dem.core.stains import READ_NOTE, StainView, find_stain, stain_colours
from napari_dem.data.families import EOSIN_OD, HAEMATOXYLIN_OD, he_glands, stain_rgb
from napari_dem.data.synthetic import synthetic_nuclei


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1)))


def _he(seed: int = 0, shape=(96, 96)) -> tuple[np.ndarray, np.ndarray]:
    """Random amounts of both stains (haematoxylin in blobs), painted by Beer-Lambert."""
    rng = np.random.default_rng(seed)
    nuclei, _ = synthetic_nuclei(shape, seed=seed)
    h = 1.2 * nuclei / nuclei.max()
    e = rng.uniform(0.2, 0.6, shape)
    return stain_rgb(h, e, rng), h


def _stain(image: np.ndarray, axes: str = "YXC"):
    layout = parse_axes(axes, image.shape, None)
    return find_stain(image, layout), layout


def test_stain_colours_are_the_painted_ones_haematoxylin_first():
    rng = np.random.default_rng(0)
    amounts = rng.uniform(0, 1, (5000, 2))
    od = amounts @ np.stack([HAEMATOXYLIN_OD, EOSIN_OD])
    colours = stain_colours(od)
    assert colours is not None
    # the extreme 1 % of angles are cut (a few odd pixels do not set a colour): a degree or two off
    assert _angle(colours[0], HAEMATOXYLIN_OD) < 4 and _angle(colours[1], EOSIN_OD) < 4


def test_one_colour_is_no_stain_pair():
    rng = np.random.default_rng(0)
    od = rng.uniform(0, 1, (2000, 1)) * np.array([0.6, 0.6, 0.6]) + rng.normal(0, 1e-3, (2000, 3))
    assert stain_colours(np.abs(od)) is None


def test_the_haematoxylin_amount_follows_the_painted_one():
    rgb, h = _he()
    stain, _ = _stain(rgb)
    assert stain is not None
    amount = stain.amount(rgb)
    assert amount.shape == h.shape and amount.dtype == np.float32
    assert np.corrcoef(amount.ravel(), h.ravel())[0, 1] > 0.95


def test_fluorescence_and_grey_rgb_are_not_read_as_stains():
    img, _ = synthetic_nuclei((96, 96), seed=1)
    fluorescence = np.zeros((*img.shape, 3), np.uint8)
    fluorescence[..., 2] = (255 * img / img.max()).astype(np.uint8)  # DAPI shown in blue, on black
    fluorescence[..., 1] = fluorescence[..., 2] // 3
    assert _stain(fluorescence)[0] is None
    grey = np.repeat((255 - fluorescence[..., 2:]), 3, axis=-1)  # dark nuclei on white, no colour
    assert _stain(grey)[0] is None


@pytest.mark.parametrize("axes", ["YXC", "CYX", "TYXC"])
def test_the_lazy_view_reads_what_the_whole_image_gives(axes):
    rgb, _ = _he(shape=(40, 48))
    stain, _ = _stain(rgb)
    eager = stain.amount(rgb)
    image = rgb
    if axes == "CYX":
        image = np.moveaxis(rgb, -1, 0)
    elif axes == "TYXC":
        image = np.stack([rgb, rgb[::-1]])
        eager = np.stack([eager, eager[::-1]])
    view = StainView(image, parse_axes(axes, image.shape, None), stain)
    assert view.shape == eager.shape and view.dtype == np.float32
    eager = -eager  # the view is the stain as a grey image: what holds it is dark
    np.testing.assert_allclose(np.asarray(view), eager, rtol=1e-6)
    index = (slice(3, 30, 2), 7) if axes != "TYXC" else (1, slice(None, None, 3), slice(5, 9))
    np.testing.assert_allclose(view[index], eager[index], rtol=1e-6)
    np.testing.assert_allclose(view[..., 4], eager[..., 4], rtol=1e-6)


def test_glandular_he_default_finds_the_nuclei_not_the_glands():
    """The channel mean reads the glands (as dark as their nuclei) as classes: F1 0.00; by the
    haematoxylin the default finds the nuclei (F1 0.892 on this seed; the oracle-tuned
    multi-Otsu sweep of the panel reaches 0.79)."""
    from napari_dem.api import segment_image

    rgb, truth = he_glands(seed=9980)
    out = segment_image(rgb, "YXC", device="cpu", instances=True)
    assert READ_NOTE in out.semantic.decision.summary()
    assert out.semantic.decision.task == "objects"
    assert instance_f1(out.labels, truth) > 0.85
    plain = segment_image(rgb, "YXC", device="cpu", instances=True, stain="none")
    assert instance_f1(plain.labels, truth) < 0.5


def test_a_fitted_stain_is_saved_and_read_the_same_way(tmp_path):
    from napari_dem.core.segmenter import DEMSegmenter

    rgb, _ = _he(seed=2, shape=(128, 128))
    seg = DEMSegmenter(device="cpu").fit(rgb, "YXC")
    assert seg.stain_ is not None
    labels = seg.predict(rgb, "YXC")
    back = DEMSegmenter.load(seg.save(tmp_path / "he.demseg"), device="cpu")
    np.testing.assert_array_equal(back.stain_.weights, seg.stain_.weights)
    np.testing.assert_array_equal(back.predict(rgb, "YXC"), labels)
    with pytest.raises(ValueError, match="RGB stain"):
        seg.predict(rgb[..., 0], "YX")
    with pytest.raises(ValueError, match="stain must be one of"):
        DEMSegmenter(device="cpu", stain="eosin").fit(rgb, "YXC")


def test_fine_tuning_reads_a_stained_slide_as_the_segmenter_does():
    from napari_dem.core.train import training_units

    rgb, h = _he(seed=3)
    (unit,) = training_units(rgb, "YXC", 2)
    assert unit.shape == (1, *h.shape)  # one grey channel, not R, G and B
    assert np.corrcoef(unit[0].ravel(), h.ravel())[0, 1] < -0.95  # the stain, dark where it is
    (plain,) = training_units(rgb, "YXC", 2, stain="none")
    assert plain.shape == (3, *h.shape)


def test_a_lazy_stained_slide_gives_the_labels_of_the_array():
    """dask (read block by block through the view) gives the labels of numpy."""
    da = pytest.importorskip("dask.array")
    from napari_dem.api import segment_image

    rgb, _ = he_glands((256, 256), seed=9981)
    eager = segment_image(rgb, "YXC", device="cpu", tile_size=128)
    lazy = segment_image(da.from_array(rgb, chunks=(64, 64, 3)), "YXC", device="cpu", tile_size=128)
    assert READ_NOTE in lazy.semantic.decision.summary()
    np.testing.assert_array_equal(np.asarray(lazy.labels), eager.labels)


def test_an_opaque_rgba_export_is_read_as_its_rgb():
    """A slide saved as RGBA (a PNG export, alpha 255 everywhere) gives the labels of its RGB;
    a fourth channel that varies is no alpha, and no stain is read."""
    from napari_dem.api import segment_image

    rgb, _ = he_glands((256, 256), seed=9981)
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=-1)
    plain = segment_image(rgb, "YXC", device="cpu")
    with_alpha = segment_image(rgba, "YXC", device="cpu")
    assert READ_NOTE in with_alpha.semantic.decision.summary()
    np.testing.assert_array_equal(with_alpha.labels, plain.labels)
    rgba[..., 3] = rgb[..., 0]
    assert _stain(rgba)[0] is None
