"""Segmentation quality of DEM against classic baselines on real (2D) and 3D nuclei with ground truth.

Why: DEM is only worth its weight if it beats what a user gets from thresholds and
per-pixel clustering in a fraction of a second. The issue's targets are
foreground IoU >= 0.80 and instance F1@0.5 >= 0.78 on the DSB2018 image, and
fg IoU >= 0.72, F1 >= 0.65 on stardist's 3D nuclei. All methods run in this one
process on the same images; foreground is always chosen without ground truth
(darkest cluster = background, or the brightest class(es) = foreground), and all
but one baseline get the same watershed as DEM (``split_instances``).

"DEM fine-tuned" fine-tunes the shipped model on the very image it then segments,
without labels (this is what the napari fine-tune widget does); its seconds column
includes the fine-tuning time.

Run: ``python benchmarks/bench_quality.py`` (about a minute or two on 2 cores).
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    components,
    fmt_params,
    gmm_labels,
    kmeans_fg,
    model_fingerprint,
    multi_otsu_fg,
    otsu_smoothed_fg,
    scores,
    table,
    timed,
    watershed,
)
from _data import dsb2018, nuclei3d
from napari_dem.api import segment_image
from napari_dem.core.model import DEMModel, load_default_model
from napari_dem.core.train import TrainSettings, fine_tune, training_units

Row = tuple[str, float, float, float]


def dem(img: np.ndarray, axes: str, model: DEMModel, k: int) -> np.ndarray:
    out = segment_image(
        img, axes, n_clusters=k, instances=True, background="darkest", model=model, device="cpu", seed=0
    )
    return out.labels


def dem_rows(img: np.ndarray, mask: np.ndarray, axes: str, settings: TrainSettings) -> list[Row]:
    ndim = len(axes)
    rows: list[Row] = []
    default = load_default_model(ndim, "cpu")
    dem(img, axes, default, 3)  # warm-up: the first call pays torch's one-off set-up
    for k in (3, 2):
        inst, s = timed(lambda k=k: dem(img, axes, default, k))
        rows.append((f"DEM default model, K={k}, darkest = bg", *scores(inst, mask), s))
    tuned = copy.deepcopy(default)
    units = training_units(img, axes, ndim)
    hist, s_ft = timed(lambda: fine_tune(tuned, units, settings, device="cpu"))
    first, last = hist.steps[0].losses["total"], hist.steps[-1].losses["total"]
    print(
        f"Fine-tuning ({settings.steps} steps, batch {settings.batch_size}, patch {settings.patch_size}, "
        f"lr {settings.lr:g}): {s_ft:.1f} s, loss {first:.4f} -> {last:.4f}, "
        f"best step {hist.best_step}.\n"
    )
    for k in (3, 2):
        inst, s = timed(lambda k=k: dem(img, axes, tuned, k))
        name = f"DEM fine-tuned {settings.steps} steps on this image, K={k}"
        rows.append((name, *scores(inst, mask), s + s_ft))
    return rows


def baseline_rows(img: np.ndarray, mask: np.ndarray) -> list[Row]:
    methods: list[tuple[str, Callable[[], np.ndarray]]] = [
        ("multi-Otsu (3 classes, upper two fg) + components", lambda: components(multi_otsu_fg(img))),
        (
            "multi-Otsu (3 classes, upper two fg) + same watershed",
            lambda: watershed(multi_otsu_fg(img)),
        ),
        ("Otsu (sigma 1) + same watershed", lambda: watershed(otsu_smoothed_fg(img))),
        ("k-means (2) on intensity + components", lambda: components(kmeans_fg(img))),
        ("k-means (2) on intensity + same watershed", lambda: watershed(kmeans_fg(img))),
    ]
    rows: list[Row] = []
    for name, fn in methods:
        inst, s = timed(fn)
        rows.append((name, *scores(inst, mask), s))
    lab, s_fit = timed(lambda: gmm_labels(img, 3))
    variants = [
        ("brightest = fg + components", lambda: components(lab == 2)),
        ("brightest = fg + same watershed", lambda: watershed(lab == 2)),
        ("upper two = fg + same watershed", lambda: watershed(lab >= 1)),
    ]
    for what, fn in variants:
        inst, s = timed(fn)
        name = f"GMM (3, diag) on intensity + smoothed (1,2,4), {what}"
        rows.append((name, *scores(inst, mask), s + s_fit))
    return rows


def main() -> None:
    header = ("method", "fg IoU", "F1@0.5", "s")
    cases = [
        (
            "DSB2018 2D (512x512, 125 nuclei), axes YX",
            *dsb2018(),
            "YX",
            TrainSettings(steps=100, lr=1e-3, seed=0),
            "fg IoU >= 0.80, F1 >= 0.78",
        ),
        (
            "stardist 3D nuclei (31x61x57, 51 nuclei), axes ZYX",
            *nuclei3d(),
            "ZYX",
            TrainSettings(steps=60, lr=1e-3, seed=0, batch_size=4, patch_size=32),
            "fg IoU >= 0.72, F1 >= 0.65",
        ),
    ]
    for title, img, mask, axes, settings, target in cases:
        print(f"### {title}\n")
        print(f"Model: {model_fingerprint(len(axes))}\n")
        rows = dem_rows(img, mask, axes, settings) + baseline_rows(img, mask)
        print(table(header, rows))
        print(f'\n"same watershed" = split_instances({fmt_params()}), as segment_image uses.')
        print(f"\nTarget: {target}.\n")


if __name__ == "__main__":
    main()
