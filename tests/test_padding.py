"""Padding around an image (core/padding.py): which pixels are padding, the mirrored fill, and
what a default run makes of dark objects in a black round field of view and of an H&E slide
with a black margin (both read as classes, F1 0.00, before)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_dem.api import segment_image
from napari_dem.core.layout import parse_axes
from napari_dem.core.metrics import instance_f1
from napari_dem.core.padding import fill_padding, find_padding
from napari_dem.data.families import he_image, objects_image


def _round_view(shape) -> np.ndarray:
    yy, xx = np.indices(shape)
    return (yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2 < (min(shape) / 2 + 10) ** 2


def _padding(image: np.ndarray, axes: str = "YX"):
    return find_padding(image, parse_axes(axes, image.shape))


def test_a_black_round_view_and_a_white_margin_are_padding_and_nothing_else_is():
    img, _ = objects_image((200, 200), polarity="dark", seed=3)
    view = _round_view(img.shape)
    found = _padding(np.where(view, img, 0).astype(np.float32))
    assert found is not None
    assert np.mean(found == ~view) > 0.995  # all of the corners, and only them
    white = img.copy()
    white[:, 150:] = img.max()
    found = _padding(white)
    assert found is not None and found[:, 150:].all() and not found[:, :148].any()
    assert _padding(img) is None  # a plain field has none


def test_a_background_clipped_at_zero_saturated_objects_and_thin_borders_are_not_padding():
    rng = np.random.default_rng(0)
    dim = np.clip(rng.normal(0.0, 1.0, (200, 200)), 0, None)  # half the background exactly 0
    dim[60:90, 60:90] = 40.0  # a saturated object at the maximum, inside the field
    assert _padding(dim) is None
    framed = rng.normal(100.0, 5.0, (200, 200))
    framed[:, :1] = 0.0  # a one-pixel black frame: under the solid square
    assert _padding(framed) is None


def test_overexposed_nuclei_cut_by_the_border_are_not_padding():
    """Nuclei 50-80 px across at four times the 8-bit range: 95 % of their pixels at 255, some
    cut by the border, which made them padding (filled in, left out of the objects: F1 0.57,
    fg IoU 0.49). Plateaus at 255 inside the field too say the value is the content's own."""
    from napari_dem.core.metrics import foreground_iou

    img, truth = objects_image((256, 256), radius=(25.0, 40.0), seed=9652)
    over = np.clip((img - img.min()) / np.ptp(img) * 255 * 4.0, 0, 255).astype(np.uint8)
    cut = np.unique(np.concatenate([truth[0], truth[-1], truth[:, 0], truth[:, -1]]))
    assert len(cut) > 1 and np.mean(over[truth > 0] == 255) > 0.9  # some cut, nearly all at 255
    assert _padding(over) is None
    out = segment_image(over, "YX", device="cpu", instances=True)
    assert "padding" not in out.semantic.decision.reason
    assert foreground_iou(out.labels > 0, truth > 0) > 0.9  # measured 0.963
    assert instance_f1(out.labels, truth) > 0.9  # measured 1.000


def test_a_dark_background_clipped_at_zero_over_a_large_area_is_not_padding():
    """As in 8-bit DNA stains (BBBC007): the background is 0 over half the field, solid and at
    the border, but what borders it is 1s and 2s, not an image."""
    rng = np.random.default_rng(2)
    ramp = np.linspace(-20, 4, 200)[None, :] + rng.normal(0, 0.7, (200, 200))
    img = np.clip(ramp, 0, None).round().astype(np.uint8)
    img[80:110, 150:180] = 200  # a nucleus
    assert (img == 0).mean() > 0.5
    assert _padding(img) is None


def test_only_arrays_in_memory_are_looked_at():
    img, _ = objects_image((96, 96), seed=3)
    img[:, 60:] = 0
    assert _padding(img) is not None
    assert find_padding(da.from_array(img), parse_axes("YX", img.shape)) is None


def test_the_fill_mirrors_the_view_across_the_padding_edge_and_leaves_the_view_alone():
    rng = np.random.default_rng(1)
    img = rng.integers(10, 250, (64, 64, 3), dtype=np.uint8)
    padded = img.copy()
    padded[:, 40:] = 0
    layout = parse_axes("YXC", padded.shape)
    mask = find_padding(padded, layout)
    assert mask is not None and mask[:, 40:].all() and not mask[:, :40].any()
    filled = fill_padding(padded, layout, mask)
    assert filled.dtype == np.uint8
    np.testing.assert_array_equal(filled[:, :40], img[:, :40])
    # column 40 + k takes column 39 - k (mirrored through the nearest column in view, 39)
    np.testing.assert_array_equal(filled[:, 40:64], img[:, 38:14:-1])


@pytest.mark.parametrize("polarity", ["dark", "bright"])
def test_objects_in_a_black_round_view_are_found_and_the_corners_stay_background(polarity):
    img, truth = objects_image((256, 256), polarity=polarity, seed=9650)
    view = _round_view(img.shape)
    out = segment_image(np.where(view, img, 0).astype(np.float32), "YX", device="cpu", instances=True)
    inside = np.where(view, truth, 0)
    alone = segment_image(img, "YX", device="cpu", instances=True).labels
    assert out.semantic.decision.task == "objects"
    assert "padding around the image filled in as background" in out.semantic.decision.reason
    assert not out.labels[~view].any()
    assert instance_f1(out.labels, inside) > instance_f1(np.where(view, alone, 0), inside) - 0.05


def test_a_stained_slide_with_a_black_margin_is_read_as_without_it():
    rgb, truth = he_image((256, 256), seed=9651)
    padded = rgb.copy()
    padded[:, 170:] = 0
    inside = truth.copy()
    inside[:, 170:] = 0
    out = segment_image(padded, "YXC", device="cpu", instances=True)
    alone = segment_image(rgb, "YXC", device="cpu", instances=True).labels
    alone[:, 170:] = 0
    assert instance_f1(out.labels, inside) > instance_f1(alone, inside) - 0.03


def test_fine_tuning_reads_a_padded_image_as_the_segmenter_does():
    from napari_dem.core.train import training_units

    img, _ = objects_image((96, 96), polarity="dark", seed=4)
    padded = img.copy()
    padded[:, 64:] = 0
    layout = parse_axes("YX", padded.shape)
    mask = find_padding(padded, layout)
    assert mask is not None
    (unit,) = training_units(padded, "YX", 2)
    (expected,) = training_units(fill_padding(padded, layout, mask), "YX", 2)
    np.testing.assert_array_equal(unit, expected)
    assert unit[0, :, 64:].std() > 0.1 * unit[0, :, :64].std()  # no flat black band to learn
