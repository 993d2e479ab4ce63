"""napari dock widgets of napari-dem: Segment and Refine labels.

``napari_dem.core`` is imported first: it installs the guard that keeps triton out of
a process that already has an OpenGL canvas (see napari_dem._compat).
"""

from __future__ import annotations

import napari_dem.core  # noqa: F401  (crash guard before anything torch-related)

from .refine import RefineWidget
from .segment import SegmentWidget

__all__ = ["RefineWidget", "SegmentWidget"]
