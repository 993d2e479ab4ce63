"""napari-dem: unsupervised segmentation and clustering with Deep Expectation-Maximization.

The public Python API lives in :mod:`napari_dem.api`; this module stays light so
that napari can read the plugin manifest without importing torch.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``napari_dem.DEMSegmenter`` without importing torch when only the manifest is read."""
    if name == "DEMSegmenter":
        from .core.segmenter import DEMSegmenter

        return DEMSegmenter
    raise AttributeError(f"module 'napari_dem' has no attribute {name!r}")
