"""Images with padding: a round field of view with black corners, a stitched mosaic's black
(or white) margin, in fluorescence, brightfield, H&E and a 3D stack.

Why: padding is one exact value over a large region at the border, a class of its own to the
fit; dark objects on a bright field inside black padding were read as classes (F1 0.00).
DEM default (no options but ``instances=True``) on the padded image, against DEM on the same
field without padding, both scored on the part in view (objects cut by the padding's edge
are cut in the truth too). Generated images, seeds 9640-9659, which no training or tuning
uses. A second table holds images that must *not* be read as padding: overexposed
fluorescence nuclei in 8 bits, whose plateaus at 255 include nuclei cut by the border, scored
against Otsu on the image smoothed at sigma 1 px (an oracle for the polarity: DEM gets none),
split by DEM's instance step.

    OMP_NUM_THREADS=2 python benchmarks/bench_padding.py
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import otsu_smoothed_fg, scores, table, watershed
from napari_dem.api import segment_image
from napari_dem.core.layout import parse_axes
from napari_dem.core.metrics import instance_f1
from napari_dem.core.padding import find_padding
from napari_dem.data.families import he_glands, he_image, objects_image

SEED = 9640


def round_view(shape: tuple[int, ...]) -> np.ndarray:
    """The inside of a circle touching the middle of each side of the (last two) axes."""
    yy, xx = np.indices(shape[-2:])
    r = min(shape[-2:]) / 2
    inside = (yy - shape[-2] / 2) ** 2 + (xx - shape[-1] / 2) ** 2 < (r + 10) ** 2
    return np.broadcast_to(inside, shape)


def margin_view(shape: tuple[int, ...], share: float = 1 / 3) -> np.ndarray:
    """Everything but the right ``share`` of the X axis (a stitched mosaic's margin)."""
    view = np.ones(shape, dtype=bool)
    view[..., int(shape[-1] * (1 - share)) :] = False
    return view


def cases() -> Iterator[tuple[str, np.ndarray, np.ndarray, str, np.ndarray, float]]:
    """(name, image, truth, axes, view mask in the labels' shape, padding value)."""
    for polarity, s in (("bright", 0), ("dark", 1)):
        img, truth = objects_image((384, 384), polarity=polarity, seed=SEED + s)
        yield f"{polarity} objects, round view, black", img, truth, "YX", round_view(img.shape), 0.0
        yield f"{polarity} objects, black margin", img, truth, "YX", margin_view(img.shape), 0.0
    img, truth = objects_image((384, 384), polarity="dark", seed=SEED + 2)
    yield "dark objects, white margin", img, truth, "YX", margin_view(img.shape), float(img.max())
    for name, (rgb, truth) in (("H&E", he_image(seed=SEED + 3)), ("glandular H&E", he_glands(seed=SEED + 4))):
        yield f"{name}, black margin", rgb, truth, "YXC", margin_view(truth.shape), 0.0
        yield f"{name}, white margin", rgb, truth, "YXC", margin_view(truth.shape), 255.0
    vol, truth = objects_image((32, 128, 128), radius=(5, 8), seed=SEED + 5)
    yield "3D nuclei, black margin", vol, truth, "ZYX", margin_view(vol.shape, 0.25), 0.0


def padded(image: np.ndarray, view: np.ndarray, value: float, axes: str) -> np.ndarray:
    """``image`` with ``value`` outside ``view`` (every channel)."""
    out = image.copy()
    mask = view[..., None] if "C" in axes else view
    return np.where(mask, out, np.asarray(value, dtype=image.dtype)).astype(image.dtype)


HEADER = ["image", "padding", "DEM default F1", "padding px labelled", "without padding F1", "decided", "s"]
SATURATED_HEADER = ["objects' radius px", "gain", "objects at 255", "padding found px", "DEM F1",
                    "DEM fg IoU", "Otsu F1", "Otsu fg IoU"]  # fmt: skip


def saturated() -> Iterator[tuple[tuple[float, float], float, np.ndarray, np.ndarray]]:
    """(radius range, gain, uint8 image, truth): nuclei scaled to ``gain`` times the 8-bit range
    and clipped, so that their cores are plateaus at 255."""
    for n, radius in enumerate(((6.0, 14.0), (15.0, 25.0), (25.0, 40.0))):
        img, truth = objects_image((256, 256), radius=radius, seed=SEED + 10 + n)
        for gain in (2.5, 4.0):
            scaled = (img - img.min()) / np.ptp(img) * 255 * gain
            yield radius, gain, np.clip(scaled, 0, 255).astype(np.uint8), truth


def saturated_rows() -> list[list[object]]:
    rows = []
    for radius, gain, image, truth in saturated():
        found = find_padding(image, parse_axes("YX", image.shape))
        out = segment_image(image, "YX", device="cpu", instances=True)
        oracle = watershed(otsu_smoothed_fg(image.astype(np.float32)), image)
        (d_iou, d_f1), (o_iou, o_f1) = scores(out.labels, truth), scores(oracle, truth)
        share = f"{np.mean(image[truth > 0] == 255):.0%}"
        padding_px = 0 if found is None else int(found.sum())
        rows.append([f"{radius[0]:.0f}-{radius[1]:.0f}", gain, share, padding_px, d_f1, d_iou, o_f1, o_iou])
        print(" | ".join(str(v) for v in rows[-1]), flush=True)
    return rows


def main() -> None:
    rows = []
    for name, image, truth, axes, view, value in cases():
        inside = np.where(view, truth, 0)
        t0 = time.perf_counter()
        out = segment_image(padded(image, view, value, axes), axes, device="cpu", instances=True)
        seconds = time.perf_counter() - t0
        plain = segment_image(image, axes, device="cpu", instances=True).labels
        d = out.semantic.decision
        rows.append(
            [
                name,
                f"{1 - view.mean():.0%}",
                instance_f1(out.labels, inside),
                int(np.count_nonzero(np.asarray(out.labels)[~view])),
                instance_f1(np.where(view, plain, 0), inside),
                f"{d.task}, K={d.n_clusters}",
                f"{seconds:.1f}",
            ]
        )
        print(" | ".join(str(v) for v in rows[-1]), flush=True)
    print()
    print(table(HEADER, rows))
    print()
    print(table(SATURATED_HEADER, saturated_rows()))


if __name__ == "__main__":
    main()
