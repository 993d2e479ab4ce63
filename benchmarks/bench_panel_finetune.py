"""Does fine-tuning pay off? The panel's cases before and after ``napari-dem fine-tune`` at its
default settings, each on the case's own image, no labels.

Why: fine-tuning exists for the images the shipped model does not know, so it must lift the
panel cases where the default is weakest and harm none. The settings are read from the CLI's
own parser (steps, learning rate, patch and batch size), so this measures exactly what a user
gets from ``napari-dem fine-tune IMAGE -o model.pt`` followed by ``napari-dem segment --model
model.pt IMAGE`` with no other option. Scores as in ``bench_panel.py`` (objects: F1@0.5;
classes: matched mean Dice).

    OMP_NUM_THREADS=2 python benchmarks/bench_panel_finetune.py [--cases dsb2018,aniso3d]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import model_fingerprint, table
from _panel_cases import Case, build_cases
from bench_panel import dem_labels, score
from napari_dem.cli import build_parser, fine_tune_settings
from napari_dem.core.model import load_default_model
from napari_dem.core.train import TrainSettings, fine_tune, training_units


def cli_defaults(ndim: int, *options: str) -> TrainSettings:
    """``napari-dem fine-tune``'s settings when only ``options`` are given (read from its parser)."""
    args = build_parser().parse_args(["fine-tune", "image.tif", "-o", "model.pt", *options])
    return fine_tune_settings(args, ndim)


def fine_tuned(case: Case, options: list[str]) -> tuple[object, float]:
    """(the shipped model fine-tuned on the case's image, seconds)."""
    ndim = 3 if "Z" in case.axes else 2
    model = load_default_model(ndim, "cpu")
    t0 = time.perf_counter()
    settings = cli_defaults(ndim, *options)
    fine_tune(model, training_units(case.image, case.axes, ndim), settings, device="cpu")
    return model.eval(), time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    ap.add_argument(
        "--options", default="", help="fine-tune options to try instead of the defaults, e.g. '--lr 5e-5'"
    )
    args = ap.parse_args(argv)
    options = args.options.split()
    wanted = {c for c in args.cases.split(",") if c}
    print(f"Models: 2D {model_fingerprint(2)}; 3D {model_fingerprint(3)}")
    print(f"fine-tune: {cli_defaults(2, *options)}\n")
    rows = []
    for case in build_cases(lambda name: not wanted or name in wanted):
        before = score(case, dem_labels(case, given=False)[0])[0]
        model, seconds = fine_tuned(case, options)
        after = score(case, dem_labels(case, given=False, model=model)[0])[0]
        rows.append((case.name, case.family, before, after, after - before, f"{seconds:.0f}"))
        print(f"{case.name}: {before:.3f} -> {after:.3f} ({seconds:.0f} s)", file=sys.stderr)
    print(table(("case", "family", "default", "fine-tuned", "change", "fine-tune s"), rows))
    harmed = [r[0] for r in rows if r[4] < -0.01]
    print(f"\nCases lowered by more than 0.01: {', '.join(harmed) or 'none'}.")


if __name__ == "__main__":
    main()
