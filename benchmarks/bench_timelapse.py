"""Time-lapses whose brightness changes from frame to frame: photobleaching, a reporter turning
on, an empty or a black (dropped) frame. DEM fits one mixture to the whole movie (so that ids
agree across frames); this measures each frame's F1@0.5 at default settings against the same
movie read as it is (``frames="none"``), each frame segmented on its own, and Otsu on each frame
(sigma 1, the same size-adaptive watershed; no oracle).

Generated movies (8 frames of 256x256, 4 of 24x96x96 for the 3D one) from
:func:`napari_dem.data.families.objects_image`, seeds 9600-9699, which no training or tuning
uses. Bleaching is exponential from 100 % to the last frame's level; "read noise fixed" adds
the same Gaussian read noise to every frame after scaling, so faded frames are noisier.

    OMP_NUM_THREADS=2 python benchmarks/bench_timelapse.py
"""

from __future__ import annotations

import inspect
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import otsu_smoothed_fg, table, watershed
from napari_dem.api import segment_image
from napari_dem.core.metrics import instance_f1
from napari_dem.data.families import objects_image

SEED = 9600
FRAMES = 8


def _levels(last: float, n: int = FRAMES) -> list[float]:
    """Exponential decay from 1 to ``last`` over ``n`` frames."""
    return list(np.exp(np.linspace(0.0, np.log(last), n)))


def movie(
    seed: int,
    levels,
    shape=(256, 256),
    empty: int | None = None,
    read_noise: float = 0.0,
    black: int | None = None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """(TYX or TZYX float32 movie, per-frame instance truth): frame t is a fresh field of nuclei
    scaled by ``levels[t]``; frame ``empty`` is background only (the first frame's, redrawn);
    frame ``black`` is all zeros (a dropped frame)."""
    rng = np.random.default_rng(seed)
    frames, truths = [], []
    for t, level in enumerate(levels):
        img, truth = objects_image(shape, radius=(6, 14) if len(shape) == 2 else (5, 8), seed=seed + t)
        if t == empty:
            bg = frames[0][truths[0] == 0] if frames else img[truth == 0]
            img, truth = rng.normal(bg.mean(), bg.std(), shape), np.zeros_like(truth)
        frame = img * level + (rng.normal(0, read_noise, shape) if read_noise else 0)
        if t == black:
            frame, truth = np.zeros(shape), np.zeros_like(truth)
        frames.append(frame.astype(np.float32))
        truths.append(truth)
    return np.stack(frames), truths


def movies():
    yield "steady (control)", *movie(SEED, [1.0] * FRAMES), "TYX"
    yield "bleaching to 50 %", *movie(SEED + 10, _levels(0.5)), "TYX"
    yield "bleaching to 20 %", *movie(SEED + 20, _levels(0.2)), "TYX"
    yield "bleaching to 30 %, read noise fixed", *movie(SEED + 30, _levels(0.3), read_noise=0.02), "TYX"
    yield "reporter turning on from 15 %", *movie(SEED + 40, _levels(0.15)[::-1]), "TYX"
    yield "steady, frame 4 empty", *movie(SEED + 50, [1.0] * FRAMES, empty=4), "TYX"
    yield "bleaching to 30 %, frame 4 empty", *movie(SEED + 60, _levels(0.3), empty=4), "TYX"
    yield "steady, frame 4 black (dropped)", *movie(SEED + 80, [1.0] * FRAMES, black=4), "TYX"
    yield "3D: bleaching to 40 %", *movie(SEED + 70, _levels(0.4, 4), shape=(24, 96, 96)), "TZYX"


def f1s(labels, truths) -> list[float]:
    return [instance_f1(np.asarray(labels[t]), truths[t]) for t in range(len(truths))]


def summary(scores: list[float]) -> str:
    return f"{min(scores):.3f} / {np.mean(scores):.3f}"


def dem_f1s(stack: np.ndarray, axes: str, truths, **kwargs) -> list[float]:
    """Frame F1 of DEM on ``stack`` with instances and ``kwargs``."""
    return f1s(segment_image(stack, axes, device="cpu", instances=True, **kwargs).labels, truths)


def frame_alone(frame: np.ndarray, axes: str) -> np.ndarray:
    """DEM's instances of one frame on its own; none for a constant frame (which DEM refuses as
    "nothing to segment")."""
    if np.ptp(frame) == 0:
        return np.zeros(frame.shape, dtype=np.int32)
    return segment_image(frame, axes, device="cpu", instances=True).labels


HEADER = [
    "movie",
    "DEM default: worst / mean frame F1",
    "per frame",
    "frames read as they are",
    "each frame alone",
    "Otsu per frame",
    "DEM decided",
]


def main() -> None:
    has_frames = "frames" in inspect.signature(segment_image).parameters  # not before this option
    rows, seconds = [], []
    for name, stack, truths, axes in movies():
        t0 = time.perf_counter()
        out = segment_image(stack, axes, device="cpu", instances=True)
        seconds.append(time.perf_counter() - t0)
        default = f1s(out.labels, truths)
        raw = summary(dem_f1s(stack, axes, truths, frames="none")) if has_frames else ""
        pairs = list(zip(stack, truths, strict=True))
        alone = [instance_f1(frame_alone(f, axes[1:]), tr) for f, tr in pairs]
        otsu = [instance_f1(watershed(otsu_smoothed_fg(f), f), tr) for f, tr in pairs]
        d = out.semantic.decision
        per_frame = " ".join(f"{v:.2f}" for v in default)
        decided = f"{d.task}, K={d.n_clusters}"
        rows.append([name, summary(default), per_frame, raw, summary(alone), summary(otsu), decided])
        print(" | ".join(str(v) for v in rows[-1]), flush=True)
    print()
    print(table(HEADER, rows))
    print("\nDEM default seconds per movie: " + ", ".join(f"{s:.1f}" for s in seconds))


if __name__ == "__main__":
    main()
