"""Default settings on very noisy images: photon-starved fluorescence and high read noise.

Why: the panel's and the families' noisiest images (read noise 0.15 on objects 0.3-0.8
above the background) stand clear of their noise; live imaging at low light does not. This
sweep draws ``data.families.objects_image`` (objects of radius 6-14 px, 256x256) with
Poisson noise at 3, 5, 8 and 20 photons for the brightest object over a background of 0.5,
with Gaussian read noise of 0.2 and 0.3, and small objects (radius 2-3 and 3-5 px) at read
noise 0.2 (where smoothing would do harm), both polarities where it applies, three seeds
(9994-9996, never used in training or tuning); and 32x128x128 stacks of nuclei (radius 5-8
voxels) at 3 and 8 photons, two seeds. DEM with no options (``instances=True``)
against Otsu on the image smoothed at sigma 1 px and at 2 px, the better by the truth, with
the polarity given (an oracle: DEM gets none), split by DEM's instance step. The column
"smoothed" is the sigma the default smoothed the image by (:mod:`napari_dem.core.denoise`;
"-": read as it is).

Run: ``OMP_NUM_THREADS=2 python benchmarks/bench_noise.py`` (about two minutes on 2 cores).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import otsu_smoothed_fg, scores, table, timed, watershed
from napari_dem.api import segment_image
from napari_dem.core.denoise import smoothing_sigma
from napari_dem.core.layout import parse_axes
from napari_dem.data.families import objects_image

SEEDS = (9994, 9995, 9996)
SHAPE = (256, 256)
VOLUME = (32, 128, 128)


def cases() -> Iterator[tuple[str, str, np.ndarray, np.ndarray]]:
    """(noise, polarity, image, truth)."""
    for seed in SEEDS:
        for polarity in ("bright", "dark"):
            for photons in (3, 5, 8, 20):
                img, truth = objects_image(SHAPE, polarity=polarity, noise="low", seed=seed)
                rate = (img - img.min()) / np.ptp(img) * photons + 0.5
                counts = np.random.default_rng(seed).poisson(rate).astype(np.uint16)
                yield f"Poisson, {photons} photons", polarity, counts, truth
            for read in (0.2, 0.3):
                img, truth = objects_image(SHAPE, polarity=polarity, noise=read, seed=seed)
                yield f"read noise {read}", polarity, img, truth
        for radius in ((2.0, 3.0), (3.0, 5.0)):
            img, truth = objects_image(SHAPE, radius=radius, coverage=0.1, noise=0.2, seed=seed)
            yield f"read noise 0.2, radius {radius[0]:.0f}-{radius[1]:.0f} px", "bright", img, truth
    for seed in SEEDS[:2]:
        for polarity in ("bright", "dark"):
            for photons in (3, 8):
                vol, truth = objects_image(VOLUME, radius=(5.0, 8.0), coverage=0.25, polarity=polarity,
                                           noise="low", seed=seed)  # fmt: skip
                rate = (vol - vol.min()) / np.ptp(vol) * photons + 0.5
                counts = np.random.default_rng(seed).poisson(rate).astype(np.uint16)
                yield f"3D, Poisson, {photons} photons", polarity, counts, truth


def oracle(image: np.ndarray, polarity: str, truth: np.ndarray) -> tuple[float, float]:
    """(fg IoU, F1) of Otsu at sigma 1 or 2 px, whichever scores the better F1."""
    grey = image.astype(np.float32)
    signed = -grey if polarity == "dark" else grey
    return max((scores(watershed(otsu_smoothed_fg(signed, s), grey), truth) for s in (1.0, 2.0)),
               key=lambda v: v[1])  # fmt: skip


def main() -> None:
    rows, gaps = [], {}
    for noise, polarity, image, truth in cases():
        axes = "ZYX" if image.ndim == 3 else "YX"
        sigma = smoothing_sigma(image, parse_axes(axes, image.shape))
        out, seconds = timed(
            lambda image=image, axes=axes: segment_image(image, axes, device="cpu", instances=True)
        )
        (d_iou, d_f1), (o_iou, o_f1) = scores(out.labels, truth), oracle(image, polarity, truth)
        d = out.semantic.decision
        read = d.task if d.task != "objects" or d.objects else "no objects"
        smoothed = f"{sigma:.1f}" if out.semantic.segmenter.denoise_ else "-"
        row = [noise, polarity, smoothed, read, d_f1, d_iou, o_f1, o_iou, d_f1 - o_f1, f"{seconds:.1f}"]
        rows.append(row)
        gaps.setdefault((noise, polarity), []).append((d_f1, o_f1))
        print(" | ".join(str(v) for v in rows[-1]), flush=True)
    print()
    header = ["noise", "polarity", "smoothed", "DEM read", "DEM F1", "DEM fg IoU", "Otsu F1", "Otsu fg IoU",
              "F1 gap", "DEM s"]  # fmt: skip
    print(table(header, rows))
    print()
    summary = [[noise, polarity, *np.mean(v, 0), int(sum(a - b < -0.01 for a, b in v))]
               for (noise, polarity), v in gaps.items()]  # fmt: skip
    print(table(["noise", "polarity", "DEM F1", "Otsu F1 (oracle)", "seeds below Otsu"], summary))
    all_gaps = np.array([r[8] for r in rows])
    print(f"\nDEM F1 - Otsu F1: mean {all_gaps.mean():+.3f}; below by more than 0.01 on "
          f"{int((all_gaps < -0.01).sum())} of {len(all_gaps)}")  # fmt: skip


if __name__ == "__main__":
    main()
