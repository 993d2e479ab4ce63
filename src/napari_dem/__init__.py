"""napari-dem: unsupervised segmentation and clustering with Deep Expectation-Maximization.

The public Python API lives in :mod:`napari_dem.api`; this module stays light so
that napari can read the plugin manifest without importing torch.
"""

__version__ = "0.1.0"
