"""Choose between candidate default models on development images only, never on the panel.

Why: the shipped weights are picked from several training runs (3D results depend strongly on
the training seed), and picking them on the panel would tune to the panel. This scores each
candidate folder (``dem2d.pt`` and/or ``dem3d.pt``, as ``scripts/train_default_model.py --out``
writes them; ``shipped`` = the package's) at default settings on:

* 2D: the panel's generated 2D cases drawn from the development seeds
  (``build_cases(dev=True)``), objects by F1@0.5, classes by matched mean Dice;
* 3D: six volumes from generator seeds 6100+ (in neither the training corpus nor the panel):
  three anisotropic large-nuclei stacks (Z step 2, with their voxel size) and three isotropic
  object volumes of other sizes and densities, by F1@0.5.

    OMP_NUM_THREADS=2 python benchmarks/bench_models.py shipped /tmp/cand_a /tmp/cand_b
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import table
from _panel_cases import Case, build_cases
from bench_panel import dem_labels, score
from napari_dem.core.model import DEMModel, default_model_path, load_model
from napari_dem.data.families import anisotropic_nuclei, objects_image

DEV_3D_SEED = 6100
REAL = {"dsb2018", "bbbc007-0", "bbbc007-1", "stardist3d"}  #: the same images in both seed sets


def dev_volumes() -> list[Case]:
    """The 3D development volumes (objects, with ground truth)."""
    cases = []
    for i in range(3):
        img, mask, scale = anisotropic_nuclei(seed=DEV_3D_SEED + i)
        family = "large 3D nuclei, Z step 2"
        cases.append(Case(f"aniso-{i}", family, "objects", img, mask, "ZYX", 2, scale=scale))
    for i, (radius, coverage) in enumerate([((4.0, 7.0), 0.3), ((5.0, 9.0), 0.45), ((3.0, 6.0), 0.25)]):
        img, mask = objects_image((48, 96, 96), radius=radius, coverage=coverage, seed=DEV_3D_SEED + 100 + i)
        cases.append(Case(f"objects3d-{i}", "3D objects", "objects", img, mask, "ZYX", 2))
    return cases


def dev_cases(ndim: int) -> list[Case]:
    if ndim == 3:
        return dev_volumes()
    return [c for c in build_cases(lambda name: name not in REAL, dev=True) if "Z" not in c.axes]


def candidate(folder: str, ndim: int) -> DEMModel | None:
    """The model of ``folder`` (``shipped``: the package's) for ``ndim``; None when it has none."""
    path = default_model_path(ndim) if folder == "shipped" else Path(folder) / f"dem{ndim}d.pt"
    return load_model(path, "cpu") if path.exists() else None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", help="candidate folders, or 'shipped'")
    ap.add_argument("--ndim", type=int, choices=(2, 3), help="only this dimension")
    args = ap.parse_args(argv)
    for ndim in (args.ndim,) if args.ndim else (2, 3):
        cases = dev_cases(ndim)
        rows = []
        for folder in args.folders:
            model = candidate(folder, ndim)
            if model is None:
                continue
            values = [score(c, dem_labels(c, False, model=model)[0])[0] for c in cases]
            rows.append([folder, *values, float(np.mean(values))])
            print(f"{ndim}D {folder}: mean {rows[-1][-1]:.3f}", file=sys.stderr)
        print(f"\n{ndim}D development cases, DEM default (F1@0.5 / Dice)\n")
        print(table(["model", *[c.name for c in cases], "mean"], rows))


if __name__ == "__main__":
    main()
