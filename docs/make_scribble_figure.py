"""Figure for the docs: a wrong unsupervised split fixed by four scribbles (semi-supervised EM).

Same scene as ``tests/test_segment.py::test_scribbles_fix_a_wrong_split``: two bright and
three dim nuclei; K = 2 DEM lumps the dim ones (partly) with the background; four short
strokes (background, one dim and one bright nucleus) fix it. Run:
``python docs/make_scribble_figure.py`` -> ``docs/images/scribbles_before_after.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage import io as skio
from skimage.transform import rescale

from napari_dem.core.model import load_default_model
from napari_dem.core.segment import segment
from napari_dem.io import overlay_rgb


def scene() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    img = np.full((96, 96), 0.1) + rng.normal(0, 0.02, (96, 96))
    truth = np.ones((96, 96), np.uint8)
    yy, xx = np.ogrid[:96, :96]
    for i, (y, x) in enumerate([(20, 20), (20, 70), (70, 20), (70, 70), (45, 45)]):
        disc = (yy - y) ** 2 + (xx - x) ** 2 <= 8**2
        img[disc] = 0.95 if i < 2 else 0.22
        truth[disc] = 2
    return img, truth


def main(out: Path | None = None) -> None:
    img, truth = scene()
    model = load_default_model(2)
    free = segment(img, "YX", model=model, n_clusters=2, device="cpu").labels
    strokes = np.zeros_like(truth)
    strokes[5, 5:90] = 1
    strokes[90, 5:90] = 1
    strokes[70, 16:25] = 2
    strokes[20, 16:25] = 2
    guided = segment(img, "YX", model=model, n_clusters=2, device="cpu", scribbles=strokes).labels
    panels = [
        overlay_rgb(img, np.zeros_like(truth)),
        overlay_rgb(img, (free == 2).astype(np.uint8)),
        overlay_rgb(img, strokes),
        overlay_rgb(img, (guided == 2).astype(np.uint8)),
    ]
    gap = np.full((96, 4, 3), 255, np.uint8)
    row = np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)
    big = (rescale(row, 3, order=0, channel_axis=-1, preserve_range=True)).astype(np.uint8)
    out = out or Path(__file__).parent / "images" / "scribbles_before_after.png"
    skio.imsave(out, big, check_contrast=False)
    errors = [float(np.mean(lab != truth)) for lab in (free, guided)]
    print(f"wrote {out}; pixel error without scribbles {errors[0]:.3f}, with {errors[1]:.3f}")


if __name__ == "__main__":
    main()
