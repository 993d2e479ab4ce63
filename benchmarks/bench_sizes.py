"""Default settings across object sizes: does one default hold from specks to cells 100 px across?

Why: the panel has one case of large objects (a 512 px field of objects 50-90 px across) and
the families a few (one or two cells, three cells 200 px across); between them lie the
objects a 40x or 63x objective gives, 25-80 px across, a handful to a few dozen in the field,
where the shipped model's context (about 16 px) sees only part of each object. This sweep
draws ``data.families.objects_image`` at nine size ranges (radius 3-55 px), both polarities,
three seeds (9970-9972: never used in training or tuning), 256x256, and scores DEM with no
options (``instances=True``) against Otsu on the image smoothed at sigma 1 px with the
polarity given (an oracle: DEM gets none), split by the same instance step as DEM's
(``_common.watershed``): F1@0.5 and fg IoU, and the mean per size. Then the same in 3D:
40x128x128 stacks of balls of radius 4-14 voxels (the 3D model knows 6), both polarities, two
seeds (9980-9981). Last, DAPI-like nuclei with dark nucleoli and bright chromocentres
(``data.families.nuclei_with_nucleoli``) at five size ranges (radius 8-40 px) in 512x512
fields, two seeds (9973-9974): a threshold cuts their nucleoli out as holes.

Run: ``OMP_NUM_THREADS=2 python benchmarks/bench_sizes.py`` (about four minutes on 2 cores).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import otsu_smoothed_fg, scores, table, timed, watershed
from napari_dem.api import segment_image
from napari_dem.data.families import nuclei_with_nucleoli, objects_image

#: (objects, shape, axes, radius ranges, seeds, polarities) of the 2D, the 3D and the nucleoli sweep
SWEEPS = (
    ("blobs", (256, 256), "YX", ((3, 5), (4, 7), (6, 10), (8, 14), (10, 16), (12, 20), (15, 25), (20, 30),
                                 (25, 40), (35, 55)), (9970, 9971, 9972), ("bright", "dark")),
    ("blobs", (40, 128, 128), "ZYX", ((4, 6), (5, 8), (6, 9), (7, 10), (8, 12), (10, 14)), (9980, 9981),
     ("bright", "dark")),
    ("nuclei with nucleoli", (512, 512), "YX", ((8, 12), (10, 16), (15, 25), (20, 30), (25, 40)),
     (9973, 9974), ("bright",)),
)  # fmt: skip


def run_case(
    kind: str, shape: tuple[int, ...], axes: str, radius: tuple[float, float], polarity: str, seed: int
) -> tuple[list, tuple[float, ...]]:
    """One table row and (DEM F1, DEM fg IoU, Otsu F1, Otsu fg IoU)."""
    if kind == "blobs":
        coverage = 0.25 if len(shape) == 3 else 0.3  # a volume's objects fill less of it
        img, truth = objects_image(shape, radius=radius, polarity=polarity, coverage=coverage, seed=seed)
    else:
        img, truth = nuclei_with_nucleoli(shape, radius=radius, seed=seed)
    out, seconds = timed(lambda: segment_image(img, axes, device="cpu", instances=True))
    oracle = watershed(otsu_smoothed_fg(-img if polarity == "dark" else img), img)
    (d_iou, d_f1), (o_iou, o_f1) = scores(out.labels, truth), scores(oracle, truth)
    decision = out.semantic.decision
    read = f"{decision.task}, zoom {decision.zoom:.2f}" if decision.task == "objects" else decision.task
    row = [f"{radius[0]}-{radius[1]}", polarity, seed, int(truth.max()), read, d_f1, d_iou, o_f1, o_iou,
           d_f1 - o_f1, f"{seconds:.1f}"]  # fmt: skip
    return row, (d_f1, d_iou, o_f1, o_iou)


def main() -> None:
    segment_image(objects_image((64, 64), seed=0)[0], "YX", device="cpu")  # warm-up
    for kind, shape, axes, radii, seeds, polarities in SWEEPS:
        sweep(kind, shape, axes, radii, seeds, polarities)


def sweep(kind: str, shape: tuple[int, ...], axes: str, radii, seeds, polarities) -> None:
    """Print the table of one sweep (every size, polarity and seed) and its means per size."""
    rows, per_size = [], {}
    print(f"\n{kind}, {'x'.join(map(str, shape))} {axes}\n")
    for radius in radii:
        for polarity in polarities:
            for seed in seeds:
                row, values = run_case(kind, shape, axes, radius, polarity, seed)
                rows.append(row)
                per_size.setdefault(radius, []).append(values)
                print(" | ".join(str(v) for v in row), flush=True)
    print()
    print(table(["radius px", "polarity", "seed", "objects", "DEM read", "DEM F1", "DEM fg IoU",
                 "Otsu F1", "Otsu fg IoU", "F1 gap", "DEM s"], rows))  # fmt: skip
    print()
    summary = []
    for radius, values in per_size.items():
        v = np.array(values)
        summary.append([f"{radius[0]}-{radius[1]}", *v.mean(0), float((v[:, 0] - v[:, 2] < -0.01).sum())])
    print(table(["radius px", "DEM F1", "DEM fg IoU", "Otsu F1", "Otsu fg IoU", "cases below"], summary))
    gaps = np.array([r[9] for r in rows])
    print(f"\nDEM F1 - Otsu F1: mean {gaps.mean():+.3f}; below by more than 0.01 on "
          f"{int((gaps < -0.01).sum())} of {len(gaps)}")  # fmt: skip


if __name__ == "__main__":
    main()
