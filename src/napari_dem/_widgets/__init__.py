"""napari dock widgets of napari-dem: Segment, Refine labels, Fine-tune, Batch and Cluster objects.

``napari_dem.core`` is imported first: it installs the guard that keeps triton out of
a process that already has an OpenGL canvas (see napari_dem._compat).
"""

from __future__ import annotations

import napari_dem.core  # noqa: F401  (crash guard before anything torch-related)

from .batch import BatchWidget
from .cluster import ClusterWidget
from .finetune import FineTuneWidget
from .refine import RefineWidget
from .segment import SegmentWidget

__all__ = ["BatchWidget", "ClusterWidget", "FineTuneWidget", "RefineWidget", "SegmentWidget"]
