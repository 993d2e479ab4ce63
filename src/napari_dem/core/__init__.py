"""Numerical core of napari-dem: torch and numpy only, never Qt or napari."""

from .._compat import block_triton_if_gl_loaded

# Imported from a napari session (the plugin's widgets): keep triton out before torch
# code that may reach for it (torch.optim, torchvision) runs. See napari_dem._compat.
block_triton_if_gl_loaded()
