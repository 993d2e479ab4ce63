"""Sample data for napari's File > Open Sample and for ``napari-dem segment sample:NAME``.

``nuclei2d`` is the DSB2018 fluorescence crop bundled with its attribution
(data/DSB2018_LICENSE.txt); the others are generated on the fly, so nothing is
downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

import numpy as np


def _nuclei2d_array() -> tuple[np.ndarray, str]:
    import tifffile

    with resources.as_file(resources.files("napari_dem.data") / "dsb2018_nuclei.tif") as path:
        return tifffile.imread(path), "YX"


def _nuclei3d_array() -> tuple[np.ndarray, str]:
    from .data.synthetic import synthetic_nuclei

    return synthetic_nuclei((32, 128, 128), radius=(5.0, 10.0), noise="medium", seed=3)[0], "ZYX"


def _timelapse_array() -> tuple[np.ndarray, str]:
    from .data.synthetic import synthetic_timelapse

    return synthetic_timelapse(10, (160, 160), seed=5)[0], "TYX"


#: name -> function returning (array, axes)
SAMPLES: dict[str, Callable[[], tuple[np.ndarray, str]]] = {
    "nuclei2d": _nuclei2d_array,
    "nuclei3d": _nuclei3d_array,
    "timelapse": _timelapse_array,
}


def nuclei2d() -> list[tuple]:
    data, _ = _nuclei2d_array()
    return [(data, {"name": "nuclei2d (DSB2018)"}, "image")]


def nuclei3d() -> list[tuple]:
    data, _ = _nuclei3d_array()
    return [(data, {"name": "nuclei3d (synthetic)", "axis_labels": ("z", "y", "x")}, "image")]


def timelapse() -> list[tuple]:
    data, _ = _timelapse_array()
    return [(data, {"name": "timelapse (synthetic)", "axis_labels": ("t", "y", "x")}, "image")]
