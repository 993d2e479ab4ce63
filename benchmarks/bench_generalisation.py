"""Does the shipped 2D model generalise to synthetic nuclei it was not trained on?

Why: the default model was trained on ``synthetic_nuclei`` images with seeds
1000..1011 (see the model file's metadata); scoring it on those would measure
memorisation. Seeds 1..5 draw new layouts, brightnesses, textures, illumination
and noise from the same generator. The comparison is multi-Otsu foreground with the
same distance-transform watershed DEM uses, so the gap is the foreground alone.

Run: ``python benchmarks/bench_generalisation.py`` (about 15 s on 2 cores).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import fmt_params, model_fingerprint, multi_otsu_watershed, scores, table, timed, training_seeds
from napari_dem.api import segment_image
from napari_dem.core.model import load_default_model
from napari_dem.data.synthetic import synthetic_nuclei

SEEDS = (1, 2, 3, 4, 5)
SHAPE = (256, 256)


def mean_sd(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def main() -> None:
    seen = training_seeds(2) & set(SEEDS)
    if seen:
        raise RuntimeError(f"seeds {sorted(seen)} were used to train the shipped model; pick others")
    model = load_default_model(2, "cpu")
    segment_image(synthetic_nuclei(SHAPE, seed=SEEDS[0])[0], "YX", model=model, device="cpu")  # warm-up
    header = (
        "noise",
        "DEM F1@0.5",
        "DEM fg IoU",
        "multi-Otsu + ws F1@0.5",
        "multi-Otsu + ws fg IoU",
        "DEM s",
        "multi-Otsu + ws s",
    )
    rows = []
    for noise in ("low", "medium", "high"):
        res: dict[str, list[float]] = {k: [] for k in ("df1", "diou", "of1", "oiou", "ds", "os")}
        for seed in SEEDS:
            img, mask = synthetic_nuclei(SHAPE, noise=noise, seed=seed)
            out, s_dem = timed(
                lambda img=img: segment_image(
                    img, "YX", n_clusters=3, instances=True, model=model, device="cpu", seed=0
                )
            )
            inst, s_otsu = timed(lambda img=img: multi_otsu_watershed(img))
            iou, f1 = scores(out.labels, mask)
            res["diou"].append(iou)
            res["df1"].append(f1)
            iou, f1 = scores(inst, mask)
            res["oiou"].append(iou)
            res["of1"].append(f1)
            res["ds"].append(s_dem)
            res["os"].append(s_otsu)
        rows.append(
            (
                noise,
                mean_sd(res["df1"]),
                mean_sd(res["diou"]),
                mean_sd(res["of1"]),
                mean_sd(res["oiou"]),
                float(np.mean(res["ds"])),
                float(np.mean(res["os"])),
            )
        )
    print(f"Synthetic nuclei {SHAPE[0]}x{SHAPE[1]}, seeds {SEEDS} (mean ± sd over seeds).\n")
    print(f"DEM: shipped 2D model {model_fingerprint(2)}, K=3, darkest cluster = background.\n")
    print(f"Both: split_instances({fmt_params()}), as segment_image uses.\n")
    print(table(header, rows))


if __name__ == "__main__":
    main()
