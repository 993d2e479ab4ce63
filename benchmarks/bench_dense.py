"""Default settings on dense fields: objects covering 60 % of the image, dark on bright and bright
on dark (confluent cells under brightfield, or in fluorescence).

Why: the panel's dense case is one bright field; dark objects this dense leave the intensity
with one mode (the background is 40 % of the field and as noisy as it is bright), which is
what the texture rule and the "no objects" rule look for. Ten seeds per polarity (9990-9999,
never used in training or tuning), 256x256, objects of radius 6-14 px. DEM with no options
(``instances=True``) against Otsu on the image smoothed at sigma 1 px with the polarity given
(an oracle: DEM gets none), split by DEM's instance step.

Run: ``OMP_NUM_THREADS=2 python benchmarks/bench_dense.py`` (about half a minute on 2 cores).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import otsu_smoothed_fg, scores, table, watershed
from napari_dem.api import segment_image
from napari_dem.data.families import objects_image

SEEDS = range(9990, 10000)


def main() -> None:
    rows = []
    for polarity in ("dark", "bright"):
        for seed in SEEDS:
            img, truth = objects_image((256, 256), coverage=0.6, polarity=polarity, seed=seed)
            out = segment_image(img, "YX", device="cpu", instances=True)
            oracle = watershed(otsu_smoothed_fg(-img if polarity == "dark" else img), img)
            (d_iou, d_f1), (o_iou, o_f1) = scores(out.labels, truth), scores(oracle, truth)
            d = out.semantic.decision
            read = "no objects" if d.task == "objects" and not d.objects else d.reason.split(" (")[0]
            rows.append([polarity, seed, read, d_f1, d_iou, o_f1, o_iou, d_f1 - o_f1])
            print(" | ".join(str(v) for v in rows[-1]), flush=True)
    print()
    header = ["polarity", "seed", "DEM read", "DEM F1", "DEM fg IoU", "Otsu F1", "Otsu fg IoU", "F1 gap"]
    print(table(header, rows))
    for polarity in ("dark", "bright"):
        gaps = np.array([r[7] for r in rows if r[0] == polarity])
        f1 = np.mean([r[3] for r in rows if r[0] == polarity])
        below = int((gaps < -0.01).sum())
        print(f"\n{polarity}: DEM F1 {f1:.3f}; minus Otsu F1: mean {gaps.mean():+.3f}; "
              f"below by more than 0.01 on {below} of {len(gaps)}")  # fmt: skip


if __name__ == "__main__":
    main()
