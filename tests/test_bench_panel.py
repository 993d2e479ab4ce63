"""A smoke run of the benchmark panel in CI: two tiny cases through the same code as the full
run (DEM default, DEM with K and task given, every oracle-tuned baseline, the per-case, per-
baseline and per-family tables, one seed of the auto-K table), so that a change which breaks
the yardstick, or the default on the simplest images, fails here and not in a 14-minute run."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_panel
from _panel_cases import smoke_cases


def _row(out: str, name: str) -> list[str]:
    """The cells of the first table row of case ``name`` in the printed panel."""
    line = next(line for line in out.splitlines() if line.startswith(f"| {name} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_panel_smoke_run_prints_every_table_and_the_default_passes_its_tiny_cases(capsys) -> None:
    bench_panel.main(["--smoke"])
    out = capsys.readouterr().out

    objects = _row(out, "smoke-objects")
    assert objects[2] == "F1@0.5" and objects[5].startswith("objects, K=")
    assert float(objects[3]) >= 0.9 and float(objects[4]) >= 0.85  # F1 and fg IoU, no options
    classes = _row(out, "smoke-classes")
    assert classes[2] == "Dice" and classes[5] == "classes, K=3"
    assert float(classes[3]) >= 0.95
    for row in (objects, classes):  # the best baseline is a real score of a named sweep setting
        assert 0.5 <= float(row[7]) <= 1.0 and "(" in row[8]
        assert float(row[9]) == pytest.approx(float(row[3]) - float(row[7]), abs=1.5e-3)

    # every baseline of each task has a score (the second table's row after the first's)
    baseline_rows = [line for line in out.splitlines() if line.startswith("| smoke-")][2:4]
    for line, filled in zip(baseline_rows, (4, 3), strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")[1:]]
        assert sum(1 for c in cells if c) == filled, line
    assert "| tiny: bright objects | 1 |" in out and "| tiny: 3 classes by mean | 1 |" in out
    assert "Mean gap over families:" in out
    assert "100% of the mean-separated ones" in out  # auto K on one seed of the phantoms


def test_the_panel_scores_are_not_vacuous() -> None:
    """An empty result scores 0 on objects and one class for all scores badly on classes."""
    objects, classes = smoke_cases()
    assert bench_panel.score(objects, np.zeros_like(objects.truth))[0] == 0.0
    assert bench_panel.score(objects, objects.truth)[0] == 1.0
    assert bench_panel.score(classes, np.ones_like(classes.truth))[0] < 0.5
    assert bench_panel.score(classes, classes.truth)[0] == pytest.approx(1.0)
