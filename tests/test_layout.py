"""Axes strings: guessing and validation."""

from __future__ import annotations

import pytest

from napari_dem.core.layout import AxesError, guess_axes, parse_axes


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
