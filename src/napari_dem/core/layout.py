"""Axes strings: which axes of an array are time, depth, channel, and the image plane.

An explicit axes string (``YX``, ``YXC``, ``ZYX``, ``TYX``, ``TZYX``, ``CZYX``...) is the
contract between the user and the core; :func:`guess_axes` proposes one for the
common shapes so that simple cases need none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral

from .errors import InputError

#: Letters understood: T time (or any batch axis), Z depth, C channel, Y and X the plane.
#: ``S`` (samples, as tifffile writes RGB) is read as ``C``.
AXES_LETTERS = "TZCYX"
CANONICAL = "TZCYX"


class AxesError(InputError):
    """An axes string that does not fit the array it describes."""


@dataclass(frozen=True)
class Layout:
    """A validated axes string for an array of a given shape."""

    axes: str
    shape: tuple[int, ...]

    def size(self, letter: str) -> int:
        return self.shape[self.axes.index(letter)] if letter in self.axes else 1

    @property
    def has_z(self) -> bool:
        return "Z" in self.axes

    @property
    def channels(self) -> int:
        return self.size("C")

    @property
    def label_axes(self) -> str:
        """Axes of the label image: the input's, without the channel axis."""
        return self.axes.replace("C", "")

    @property
    def label_shape(self) -> tuple[int, ...]:
        return tuple(s for a, s in zip(self.axes, self.shape, strict=True) if a != "C")

    def canonical_order(self) -> tuple[int, ...]:
        """Permutation that brings the present axes into T Z C Y X order."""
        return tuple(self.axes.index(a) for a in CANONICAL if a in self.axes)


def full_index(index, ndim: int) -> tuple:
    """``index`` into an array of ``ndim`` axes as a tuple of one entry per axis: an Ellipsis
    expanded, missing trailing axes taken whole."""
    index = list(index) if isinstance(index, tuple) else [index]
    if any(i is Ellipsis for i in index):
        at = index.index(Ellipsis)
        index[at : at + 1] = [slice(None)] * (ndim - len(index) + 1)
    return tuple(index + [slice(None)] * (ndim - len(index)))


def image_index(layout: Layout, index) -> tuple[tuple, str]:
    """(the index of the image, the axes its block keeps) for ``index`` into the image's labels
    (its axes without C): the channels are read whole. What lets a view of an image be indexed
    like its labels, reading only the block asked for."""
    read, kept = [], ""
    labels = iter(full_index(index, len(layout.label_axes)))
    for a in layout.axes:
        i = slice(None) if a == "C" else next(labels)
        read.append(i)
        if not isinstance(i, Integral):  # an integer drops its axis (numpy's too)
            kept += a
    return tuple(read), kept


def guess_axes(shape: Sequence[int], rgb: bool | None = None) -> str:
    """A sensible axes string for an array of ``shape`` (last two axes are always Y X).

    ``rgb=True`` (a napari RGB layer) or a trailing axis of size 3 or 4 on a 3D array
    means colour channels last.
    """
    nd = len(shape)
    if nd == 2:
        return "YX"
    last_is_color = rgb if rgb is not None else (nd == 3 and shape[-1] in (3, 4))
    if last_is_color:
        return {3: "YXC", 4: "ZYXC", 5: "TZYXC"}.get(nd) or _fail(shape)
    return {3: "ZYX", 4: "TZYX", 5: "TZCYX"}.get(nd) or _fail(shape)


def _fail(shape: Sequence[int]) -> str:
    raise AxesError(f"cannot guess axes for a {len(shape)}D array of shape {tuple(shape)}; give them")


def parse_axes(axes: str | None, shape: Sequence[int], rgb: bool | None = None) -> Layout:
    """Validate ``axes`` against ``shape`` (or guess them) and return a :class:`Layout`."""
    shape = tuple(int(s) for s in shape)
    if axes is None or axes == "":
        axes = guess_axes(shape, rgb)
    axes = axes.upper().replace("S", "C")
    bad = sorted(set(axes) - set(AXES_LETTERS))
    if bad:
        raise AxesError(
            f"unknown axis letter(s) {''.join(bad)!r} in {axes!r}; use letters from {AXES_LETTERS}"
        )
    if len(set(axes)) != len(axes):
        raise AxesError(f"axes {axes!r} name an axis twice")
    if len(axes) != len(shape):
        raise AxesError(
            f"axes {axes!r} have {len(axes)} letters but the image has {len(shape)} dimensions {shape}"
        )
    if "Y" not in axes or "X" not in axes:
        raise AxesError(f"axes {axes!r} must contain Y and X")
    return Layout(axes, shape)
