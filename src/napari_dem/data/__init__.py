"""Sample and synthetic data shipped with napari-dem."""
