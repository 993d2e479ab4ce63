"""docs/make_screenshots.py runs: one quick figure, made in a real viewer, to a PNG (under xvfb)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.gui, pytest.mark.slow]

pytest.importorskip("napari")

import napari_dem.core  # noqa: F401,E402  (crash guard first)

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_batch_folder_figure_is_made_by_its_generator(qapp, tmp_path: Path, monkeypatch) -> None:
    from skimage import io as skio

    monkeypatch.syspath_prepend(str(DOCS))
    sys.modules.pop("make_screenshots", None)
    import make_screenshots

    monkeypatch.setattr(make_screenshots, "OUT", tmp_path)
    make_screenshots.FIGURES["batch_folder"](n_files=2, side=64)  # the docs' figure, on fewer, smaller files
    png = tmp_path / "batch_widget.png"
    picture = skio.imread(png)
    assert picture.shape[:2] == (make_screenshots.SIZE[1], make_screenshots.SIZE[0])
    assert np.ptp(picture[..., :3]) > 100  # a real window, not a blank grab
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch_widget.png"]
