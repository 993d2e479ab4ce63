"""Train the default models shipped in ``src/napari_dem/core/weights`` (2D and 3D).

Training data: synthetic nuclei (seeds 1000+, never used by tests or benchmarks)
plus scikit-image's bundled micrographs and photos. No benchmark image
(DSB2018, stardist's 3D nuclei) is used. Run from the repository root:

    python scripts/train_default_model.py            # both models
    python scripts/train_default_model.py --ndim 2   # one of them
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from skimage import data as skdata

from napari_dem.core.model import DEMConfig, DEMModel, save_model
from napari_dem.core.train import TrainSettings, fine_tune, training_units
from napari_dem.data.synthetic import synthetic_nuclei

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "napari_dem" / "core" / "weights"
TRAIN_SEED_BASE = 1000
CONTEXT_SIGMA_3D = float(os.environ.get("DEM_CONTEXT_SIGMA_3D", "4.0"))
DENOISE_SIGMA = float(os.environ.get("DEM_DENOISE_SIGMA", "1.0"))


def units_2d() -> tuple[list[np.ndarray], list[str]]:
    units, names = [], []
    for i, noise in enumerate(["low", "medium", "high"] * 4):
        img, _ = synthetic_nuclei((256, 256), noise=noise, seed=TRAIN_SEED_BASE + i, radius=(5.0, 16.0))
        units += training_units(img, "YX", 2)
        names.append(f"synthetic_nuclei_2d(seed={TRAIN_SEED_BASE + i}, noise={noise})")
    for name in ("cell", "coins", "human_mitosis_free"):
        if not hasattr(skdata, name):
            continue
        img = getattr(skdata, name)()
        units += training_units(img, "YX", 2)
        names.append(f"skimage.data.{name}")
    return units, names


def units_3d() -> tuple[list[np.ndarray], list[str]]:
    units, names = [], []
    for i, noise in enumerate(["low", "medium", "high"] * 2):
        img, _ = synthetic_nuclei(
            (40, 96, 96), noise=noise, seed=TRAIN_SEED_BASE + 100 + i, radius=(5.0, 10.0)
        )
        units += training_units(img, "ZYX", 3)
        names.append(f"synthetic_nuclei_3d(seed={TRAIN_SEED_BASE + 100 + i}, noise={noise})")
    return units, names


def train(ndim: int, steps: int, seed: int) -> Path:
    units, names = units_2d() if ndim == 2 else units_3d()
    config = DEMConfig(
        ndim=ndim,
        width=16 if ndim == 2 else 8,
        context_sigma=16.0 if ndim == 2 else CONTEXT_SIGMA_3D,
        denoise_sigma=DENOISE_SIGMA,
    )
    model = DEMModel(config)
    settings = TrainSettings(
        steps=steps, batch_size=8 if ndim == 2 else 4, patch_size=96 if ndim == 2 else 32, seed=seed
    )
    t0 = time.perf_counter()

    def log(rec):
        if rec.step % 50 == 0 or rec.step == rec.total:
            ls = " ".join(f"{k}={v:.4f}" for k, v in rec.losses.items())
            print(f"[{ndim}D] step {rec.step}/{rec.total} {ls} ({time.perf_counter() - t0:.0f}s)", flush=True)

    history = fine_tune(model, units, settings, device="cpu", progress=log)
    path = save_model(
        model,
        WEIGHTS / f"dem{ndim}d.pt",
        training_images=names,
        training_steps=steps,
        best_step=history.best_step,
        seed=seed,
    )
    print(f"saved {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ndim", type=int, choices=(2, 3))
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for ndim in (args.ndim,) if args.ndim else (2, 3):
        train(ndim, args.steps, args.seed)


if __name__ == "__main__":
    main()
