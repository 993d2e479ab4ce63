"""Axes strings: guessing and validation."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dem.core.layout import AxesError, guess_axes, image_index, parse_axes


@pytest.mark.parametrize(
    ("shape", "rgb", "expected"),
    [
        ((64, 64), None, "YX"),
        ((64, 64, 3), None, "YXC"),
        ((10, 64, 64), None, "ZYX"),
        ((5, 10, 64, 64), None, "TZYX"),
        ((10, 64, 64, 3), True, "ZYXC"),
    ],
)
def test_guess_axes(shape, rgb, expected) -> None:
    assert guess_axes(shape, rgb) == expected


def test_parse_axes_reads_samples_as_channels_and_derives_label_axes() -> None:
    layout = parse_axes("yxs", (32, 32, 3))
    assert layout.axes == "YXC"
    assert layout.label_axes == "YX"
    assert layout.label_shape == (32, 32)
    assert layout.channels == 3
    assert parse_axes("CZYX", (2, 5, 32, 32)).canonical_order() == (1, 0, 2, 3)


@pytest.mark.parametrize(
    ("axes", "shape", "message"),
    [
        ("ZYX", (32, 32), "2 dimensions"),
        ("YXQ", (32, 32, 2), "unknown axis"),
        ("YYX", (3, 32, 32), "twice"),
        ("TZC", (3, 3, 3), "must contain Y and X"),
    ],
)
def test_parse_axes_errors(axes, shape, message) -> None:
    with pytest.raises(AxesError, match=message):
        parse_axes(axes, shape)


def test_six_dimensions_need_explicit_axes() -> None:
    with pytest.raises(AxesError, match="cannot guess"):
        parse_axes(None, (2, 2, 2, 2, 8, 8))


def test_image_index_reads_the_channels_whole_and_says_which_axes_stay():
    layout = parse_axes("TYXC", (2, 5, 6, 3), None)
    assert image_index(layout, (1, slice(0, 3))) == ((1, slice(0, 3), slice(None), slice(None)), "YXC")
    assert image_index(layout, (Ellipsis, 4)) == ((slice(None), slice(None), 4, slice(None)), "TYC")
    assert image_index(layout, np.int64(0)) == ((np.int64(0), slice(None), slice(None), slice(None)), "YXC")
    cyx = parse_axes("CYX", (3, 5, 6), None)
    assert image_index(cyx, ()) == ((slice(None), slice(None), slice(None)), "CYX")
