"""Stained slides at default settings: read by the haematoxylin against the channel mean.

Why: an RGB image of a stained slide is read by its haematoxylin (docs/method.md, "Stained
slides"); the rule was made on two glandular H&E images (`bench_families.py`, seeds 9980-9981),
so these eight more (seeds 9982-9989, never used in training or tuning) say whether it holds.
Each row: DEM with no options (``stain="auto"``), DEM reading the channel mean
(``stain="none"``, the previous default), and the best of the panel's oracle sweep
(`_sweeps.best_objects`: multi-Otsu, Voronoi-Otsu, GMM and k-means on the grey or on
scikit-image's haematoxylin channel, each with DEM's instance step, chosen with the truth).
Scores: instance F1@0.5 (and DEM's fg IoU). One more column: DEM on the image saved as JPEG at
quality 75 and read back, as slides are often shared (the stain colours and amounts then carry
the compression's blocks and chroma loss).

Run: ``OMP_NUM_THREADS=2 python benchmarks/bench_stains.py`` (about 2 minutes on 2 cores).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import scores, table
from _sweeps import best_objects
from napari_dem.api import segment_image
from napari_dem.data.families import he_glands

SEEDS = range(9982, 9990)
#: Quality of the JPEG round trip of the last column.
JPEG_QUALITY = 75


def jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    """``image`` (uint8 RGB) saved as JPEG in memory and read back."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


def main() -> None:
    rows, gaps = [], []
    for seed in SEEDS:
        image, truth = he_glands(seed=seed)
        out = segment_image(image, "YXC", device="cpu", instances=True)
        iou, f1 = scores(out.labels, truth)
        by_mean = segment_image(image, "YXC", device="cpu", instances=True, stain="none")
        f1_mean = scores(by_mean.labels, truth)[1]
        name, (best, _, setting) = max(best_objects(image, truth, "YXC").items(), key=lambda kv: kv[1][0])
        d = out.semantic.decision
        decided = f"{d.task}, K={d.n_clusters}"
        f1_jpeg = scores(segment_image(jpeg(image), "YXC", device="cpu", instances=True).labels, truth)[1]
        rows.append([seed, decided, iou, f1, f1_mean, f1_jpeg, best, f"{name} ({setting})", f1 - best])
        gaps.append(f1 - best)
    header = (
        "seed", "DEM decided", "DEM fg IoU", "DEM F1", "channel mean F1", f"DEM F1, JPEG q{JPEG_QUALITY}",
        "oracle F1", "oracle", "gap",
    )  # fmt: skip
    print(table(header, rows))
    f1s = np.array([[r[3], r[4], r[5], r[6]] for r in rows])
    close = sum(g >= -0.01 for g in gaps)
    print(
        f"\nMean F1: DEM {f1s[:, 0].mean():.3f}, channel mean {f1s[:, 1].mean():.3f}, DEM on the JPEG "
        f"{f1s[:, 2].mean():.3f}, oracle {f1s[:, 3].mean():.3f}; DEM within 0.01 of the oracle on "
        f"{close} of {len(gaps)}"
    )


if __name__ == "__main__":
    main()
