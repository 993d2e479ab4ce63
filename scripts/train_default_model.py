"""Train the default models shipped in ``src/napari_dem/core/weights`` (2D and 3D).

The shipped models are trained from new weights in two stages (:data:`RECIPE`):

1. the nuclei corpus: synthetic nuclei (seeds from
   :data:`~napari_dem.data.families.TRAIN_SEEDS`, never the panel's) plus scikit-image's
   bundled micrographs and photos, at learning rate 2e-3;
2. that corpus plus every generated family of :mod:`napari_dem.data.families` (objects
   3-20 px in radius of both polarities, uneven illumination, touching crowds, tissue-class
   phantoms with 2-6 classes by mean or texture, H&E-like RGB stains, anisotropic 3D nuclei,
   the MRI-like phantom), at 5e-4.

One stage on everything from new weights lost the dark-on-bright and 3D cases
(docs/benchmarks.md, "Retraining the shipped models"); the second, slower stage keeps what
the first learnt about nuclei. No benchmark image (DSB2018, stardist's 3D nuclei, BBBC007)
and no panel seed is used. Objects larger than about 20 px in radius are not needed: the
segmenter shrinks such images to the models' scale (:mod:`napari_dem.core.rescale`). Run
from the repository root:

    python scripts/train_default_model.py                       # both models, into the package
    python scripts/train_default_model.py --ndim 2 --out /tmp/candidate   # one, elsewhere
    python scripts/train_default_model.py --ndim 3 --seed 1 --out /tmp/c1  # another seed

Training is on the CPU with the threads torch chooses; two runs with other thread counts
give slightly different weights (float sums in another order), so the panel scores of a
rebuilt model are expected to move by about 0.01, not to repeat to the digit.
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


#: (corpus, steps, learning rate) per stage, per dimension: what the shipped models are.
RECIPE: dict[int, list[tuple[str, int, float]]] = {
    2: [("nuclei", 300, 2e-3), ("families", 300, 5e-4)],
    3: [("nuclei", 200, 2e-3), ("families", 300, 5e-4)],
}
#: The seed of each shipped model. In 3D the result depends on the seed far more than in 2D
#: (mean F1 of six 3D development volumes, seeds 0-4: 0.657, 0.780, 0.853, 0.756, 0.860; in
#: 2D two candidates differed by 0.004), so five were trained and the best on those volumes
#: (generator seeds 6100+, in neither the training corpus nor the panel) is shipped.
SEEDS = {2: 0, 3: 4}


def corpus(ndim: int, which: str) -> tuple[list[np.ndarray], list[str]]:
    """Training units and their names: the nuclei corpus, plus the families if asked."""
    units, names = units_2d() if ndim == 2 else units_3d()
    if which == "families":
        more, more_names = families_2d() if ndim == 2 else families_3d()
        units, names = units + more, names + more_names
    return units, names


def train(ndim: int, seed: int, out: Path = WEIGHTS) -> Path:
    """Train one model from new weights through the stages of :data:`RECIPE`."""
    config = DEMConfig(
        ndim=ndim,
        width=16 if ndim == 2 else 8,
        context_sigma=16.0 if ndim == 2 else CONTEXT_SIGMA_3D,
        denoise_sigma=DENOISE_SIGMA,
    )
    model = DEMModel(config)
    t0 = time.perf_counter()
    all_names: list[str] = []
    for stage, (which, steps, lr) in enumerate(RECIPE[ndim], start=1):
        units, names = corpus(ndim, which)
        all_names += [n for n in names if n not in all_names]
        settings = TrainSettings(
            steps=steps,
            batch_size=8 if ndim == 2 else 4,
            patch_size=96 if ndim == 2 else 32,
            seed=seed + stage - 1,
            lr=lr,
        )

        def log(rec, stage=stage):
            if rec.step % 50 == 0 or rec.step == rec.total:
                ls = " ".join(f"{k}={v:.4f}" for k, v in rec.losses.items())
                print(
                    f"[{ndim}D stage {stage}] step {rec.step}/{rec.total} {ls} "
                    f"({time.perf_counter() - t0:.0f}s)",
                    flush=True,
                )

        history = fine_tune(model, units, settings, device="cpu", progress=log)
    path = save_model(
        model,
        out / f"dem{ndim}d.pt",
        training_images=all_names,
        training_steps=sum(steps for _, steps, _ in RECIPE[ndim]),
        best_step=history.best_step,
        seed=seed,
        recipe=[list(stage) for stage in RECIPE[ndim]],
    )
    print(f"saved {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ndim", type=int, choices=(2, 3))
    ap.add_argument("--seed", type=int, help="default: the shipped model's (SEEDS)")
    ap.add_argument(
        "--out", type=Path, default=WEIGHTS, help="folder for the .pt files (default: the package's)"
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for ndim in (args.ndim,) if args.ndim else (2, 3):
        train(ndim, SEEDS[ndim] if args.seed is None else args.seed, args.out)


if __name__ == "__main__":
    main()
