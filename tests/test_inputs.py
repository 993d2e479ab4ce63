"""Which files a batch takes: ``*`` one folder level, ``**`` every subfolder (what the docs and the
Batch widget's pattern tooltip promise)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_dem.batch import expand_inputs
from napari_dem.io import write_array


def test_double_star_recurses_and_single_star_does_not(tmp_path: Path) -> None:
    for rel in ("top.tif", "a/one.tif", "a/b/two.tif", "a/.hidden.tif", "a/notes.txt"):
        path = tmp_path / "data" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".tif":
            write_array(path, np.zeros((4, 4), np.uint8))
        else:
            path.write_text("x")
    root = tmp_path / "data"

    def names(paths: list[Path]) -> list[str]:
        return sorted(p.relative_to(root).as_posix() for p in paths)

    assert names(expand_inputs([str(root / "**" / "*.tif")])) == ["a/b/two.tif", "a/one.tif", "top.tif"]
    assert names(expand_inputs([str(root / "*.tif")])) == ["top.tif"]
    assert names(expand_inputs([str(root)])) == ["top.tif"]  # a folder: its own files only
