"""Train the default models shipped in ``src/napari_dem/core/weights`` (2D and 3D).

Training data of the shipped models (``--corpus nuclei``, the default): synthetic nuclei
(seeds from :data:`~napari_dem.data.families.TRAIN_SEEDS`, never the panel's) plus
scikit-image's bundled micrographs and photos. ``--corpus families`` adds the generated
families of :mod:`napari_dem.data.families` (objects 3-20 px in radius of both polarities,
uneven illumination, touching crowds, tissue-class phantoms with 2-6 classes by mean or
texture, H&E-like RGB stains, anisotropic 3D nuclei, the MRI-like phantom); on the panel
that candidate was not better (docs/benchmarks.md, section 0), so it is not shipped. No
benchmark image (DSB2018, stardist's 3D nuclei, BBBC007) is used. Objects larger than
about 20 px in radius are not needed: the segmenter shrinks such images to the models'
scale (:mod:`napari_dem.core.rescale`). Run from the repository root:

    python scripts/train_default_model.py            # both models
    python scripts/train_default_model.py --ndim 2   # one of them
    python scripts/train_default_model.py --corpus families --out /tmp/candidate   # a candidate
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from skimage import data as skdata

from napari_dem.core.model import DEMConfig, DEMModel, load_default_model, save_model
from napari_dem.core.train import TrainSettings, fine_tune, training_units
from napari_dem.data.families import (
    TRAIN_SEEDS,
    anisotropic_nuclei,
    brain_phantom,
    classes_image,
    he_image,
    objects_image,
)
from napari_dem.data.synthetic import synthetic_nuclei

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "napari_dem" / "core" / "weights"
TRAIN_SEED_BASE = TRAIN_SEEDS.start
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


def families_2d() -> tuple[list[np.ndarray], list[str]]:
    """The generated image families in 2D (``--corpus families``)."""
    units, names = [], []
    seed = TRAIN_SEED_BASE + 200
    for i, (radius, polarity, coverage, illumination) in enumerate(
        [
            ((2.5, 5.0), "bright", 0.2, 0.4),
            ((4.0, 9.0), "dark", 0.3, 0.6),
            ((8.0, 16.0), "bright", 0.6, 0.3),
            ((10.0, 20.0), "dark", 0.35, 0.8),
            ((5.0, 12.0), "bright", 0.45, 0.9),
            ((3.0, 7.0), "dark", 0.55, 0.2),
        ]
    ):
        img, _ = objects_image(
            (256, 256), radius=radius, polarity=polarity, coverage=coverage,
            illumination=illumination, seed=seed + i,
        )  # fmt: skip
        units += training_units(img, "YX", 2)
        names.append(f"objects_image(seed={seed + i}, radius={radius}, polarity={polarity})")
    for i, (k, contrast) in enumerate(
        [(2, "mean"), (4, "mean"), (6, "mean"), (2, "texture"), (3, "texture")]
    ):
        img, _ = classes_image((256, 256), n_classes=k, contrast=contrast, seed=seed + 20 + i)
        units += training_units(img, "YX", 2)
        names.append(f"classes_image(seed={seed + 20 + i}, n_classes={k}, contrast={contrast})")
    for i in range(2):
        img, _ = he_image((256, 256), seed=seed + 40 + i)
        # The model sees each channel on its own (the segmenter encodes channels separately).
        units += [u[c : c + 1] for u in training_units(img, "YXC", 2) for c in range(u.shape[0])]
        names.append(f"he_image(seed={seed + 40 + i})")
    return units, names


def families_3d() -> tuple[list[np.ndarray], list[str]]:
    """The generated image families in 3D (``--corpus families``)."""
    units, names = [], []
    seed = TRAIN_SEED_BASE + 300
    for i, (radius, polarity, coverage) in enumerate(
        [((3.0, 6.0), "bright", 0.25), ((4.0, 8.0), "dark", 0.3), ((5.0, 9.0), "bright", 0.5)]
    ):
        img, _ = objects_image(
            (40, 80, 80), radius=radius, polarity=polarity, coverage=coverage, seed=seed + i
        )
        units += training_units(img, "ZYX", 3)
        names.append(f"objects_image_3d(seed={seed + i}, radius={radius}, polarity={polarity})")
    # Anisotropic nuclei at the scale the segmenter brings them to (about 6 px in the plane).
    img, _, _ = anisotropic_nuclei((48, 96, 96), radius=(5.0, 8.0), seed=seed + 10)
    units += training_units(img, "ZYX", 3)
    names.append(f"anisotropic_nuclei(seed={seed + 10})")
    for i in range(2):
        img, _ = brain_phantom((40, 80, 80), seed=seed + 20 + i)
        units += training_units(img, "ZYX", 3)
        names.append(f"brain_phantom(seed={seed + 20 + i})")
    img, _ = classes_image((40, 80, 80), n_classes=3, scale=8.0, seed=seed + 30)
    units += training_units(img, "ZYX", 3)
    names.append(f"classes_image_3d(seed={seed + 30})")
    return units, names


def corpus(ndim: int, which: str) -> tuple[list[np.ndarray], list[str]]:
    """Training units and their names: the shipped corpus, plus the families if asked."""
    units, names = units_2d() if ndim == 2 else units_3d()
    if which == "families":
        more, more_names = families_2d() if ndim == 2 else families_3d()
        units, names = units + more, names + more_names
    return units, names


def train(
    ndim: int,
    steps: int,
    seed: int,
    out: Path = WEIGHTS,
    which: str = "nuclei",
    from_shipped: bool = False,
    lr: float = 2e-3,
) -> Path:
    """Train one model; ``from_shipped`` continues from the shipped weights instead of new ones."""
    units, names = corpus(ndim, which)
    if from_shipped:
        model = load_default_model(ndim, "cpu")
    else:
        config = DEMConfig(
            ndim=ndim,
            width=16 if ndim == 2 else 8,
            context_sigma=16.0 if ndim == 2 else CONTEXT_SIGMA_3D,
            denoise_sigma=DENOISE_SIGMA,
        )
        model = DEMModel(config)
    settings = TrainSettings(
        steps=steps, batch_size=8 if ndim == 2 else 4, patch_size=96 if ndim == 2 else 32, seed=seed, lr=lr
    )
    t0 = time.perf_counter()

    def log(rec):
        if rec.step % 50 == 0 or rec.step == rec.total:
            ls = " ".join(f"{k}={v:.4f}" for k, v in rec.losses.items())
            print(f"[{ndim}D] step {rec.step}/{rec.total} {ls} ({time.perf_counter() - t0:.0f}s)", flush=True)

    history = fine_tune(model, units, settings, device="cpu", progress=log)
    path = save_model(
        model,
        out / f"dem{ndim}d.pt",
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
    ap.add_argument(
        "--out", type=Path, default=WEIGHTS, help="folder for the .pt files (default: the package's)"
    )
    ap.add_argument(
        "--corpus",
        choices=("nuclei", "families"),
        default="nuclei",
        help="nuclei: the shipped models' corpus; families: plus every generated family (see docs)",
    )
    ap.add_argument("--from-shipped", action="store_true", help="continue from the shipped weights")
    ap.add_argument("--lr", type=float, default=2e-3, help="learning rate (default 2e-3)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for ndim in (args.ndim,) if args.ndim else (2, 3):
        train(ndim, args.steps, args.seed, args.out, args.corpus, args.from_shipped, args.lr)


if __name__ == "__main__":
    main()
