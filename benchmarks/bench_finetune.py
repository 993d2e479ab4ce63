"""Fine-tuning on the image itself (no labels): seconds per step, plateau, quality before/after.

For DSB2018 (2D), stardist's 3D nuclei, and a synthetic image outside the training
distribution (nuclei twice as large as any trained on, at high noise): the shipped
model is fine-tuned in stages (0, 25, 50, 100, 200 steps, cumulative, lr 2e-4: the CLI's
and the widget's default until 2026-11-30, now 5e-5, see ``bench_panel_finetune.py``) and
scored after each stage. The plateau step is the first step after which the loss smoothed
over 20 steps improves by less than 1 % of its range in the next 40 steps.

    OMP_NUM_THREADS=1 python benchmarks/bench_finetune.py
"""

from __future__ import annotations

import time

import numpy as np

from _common import model_fingerprint, scores, table
from _data import dsb2018, nuclei3d
from napari_dem.api import segment_image
from napari_dem.core.model import load_default_model
from napari_dem.core.train import TrainSettings, fine_tune, training_units
from napari_dem.data.synthetic import synthetic_nuclei

STAGES = (0, 25, 50, 100, 200)
LR = 2e-4


def plateau_step(losses: list[float], window: int = 20, ahead: int = 40) -> int | None:
    if len(losses) < window + ahead:
        return None
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    span = float(smooth.max() - smooth.min()) or 1.0
    for i in range(len(smooth) - ahead):
        if smooth[i] - smooth[i : i + ahead].min() < 0.01 * span:
            return i + window
    return None


def run(name: str, img: np.ndarray, truth: np.ndarray, axes: str, ndim: int, k: int) -> str:
    model = load_default_model(ndim, "cpu")
    units = training_units(img, axes, ndim)
    patch, batch = (96, 8) if ndim == 2 else (32, 4)
    rows, losses, trained, seconds = [], [], 0, 0.0
    for stage in STAGES:
        if stage > trained:
            settings = TrainSettings(
                steps=stage - trained, lr=LR, patch_size=patch, batch_size=batch, seed=stage
            )
            t0 = time.perf_counter()
            hist = fine_tune(model, units, settings, device="cpu")
            seconds += time.perf_counter() - t0
            losses += hist.series()
            trained = stage
        out = segment_image(img, axes, model=model, n_clusters=k, instances=True, device="cpu")
        iou, f1 = scores(out.labels, truth)
        rows.append([stage, f"{seconds:.1f}", f"{iou:.3f}", f"{f1:.3f}"])
    per_step = seconds / STAGES[-1]
    plateau = plateau_step(losses)
    head = (
        f"#### {name} (K={k}); model {model_fingerprint(ndim)}\n\n"
        f"{per_step:.3f} s per step (batch {batch}, patch {patch}); loss plateau at step "
        f"{plateau if plateau is not None else '> ' + str(STAGES[-1])}.\n\n"
    )
    return head + table(["steps", "CPU s (cumulative)", "fg IoU", "F1@0.5"], rows)


def main() -> None:
    img2, mask2 = dsb2018()
    img3, mask3 = nuclei3d()
    shifted, shifted_mask = synthetic_nuclei((256, 256), radius=(18.0, 30.0), noise="high", seed=7)
    print(run("DSB2018 2D", img2, mask2, "YX", 2, 3))
    print()
    print(run("stardist 3D nuclei", img3, mask3, "ZYX", 3, 2))
    print()
    print(run("synthetic, large nuclei (radius 18-30 px), high noise", shifted, shifted_mask, "YX", 2, 3))


if __name__ == "__main__":
    main()
