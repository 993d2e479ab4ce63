"""Image and object clustering: 2D images, 3D volumes or a mix, into K groups.

One backbone (:mod:`.backbone`: a small CNN, 2D or 3D, and its augmentations) and five
objectives, one module each (the first of :data:`METHODS` is the default): :mod:`.gedi`
(cluster-based SSL + an energy-based model on the same logits), :mod:`.dem` (DEM's EM layer
as the cluster head), :mod:`.joint` (2D/3D intra-inter contrastive clustering, the one that
mixes images and volumes),
:mod:`.depict` and :mod:`.nmm`. :mod:`.train` holds the shared loop: the stopping rule and the
confidence margin. :mod:`.items` prepares the items.
"""

from .base import ClusterSettings
from .items import AXES, VOLUME_SIZE, MixedItems, guess_axes, prepare_images
from .train import METHODS, ClusterResult, cluster_images

__all__ = [
    "AXES",
    "METHODS",
    "VOLUME_SIZE",
    "ClusterResult",
    "ClusterSettings",
    "MixedItems",
    "cluster_images",
    "guess_axes",
    "prepare_images",
]
