"""Guards against a known crash: torchvision (through triton) after napari's OpenGL canvas.

With the CUDA builds of torch, ``import torchvision`` imports ``triton``, whose bundled
LLVM clashes with the LLVM that Mesa has already loaded for napari's OpenGL canvas:
the process dies with a segfault (the same class as pytorch issue 129100). napari
users open the viewer first and the plugin second, so this order is the common one.

triton only serves ``torch.compile`` GPU kernels, which napari-dem never uses. When a
GL canvas may exist (vispy is imported), we make ``import triton`` fail cleanly
before torchvision is imported; torch treats that as "triton not installed".
"""

from __future__ import annotations

import sys
from types import ModuleType


def block_triton_if_gl_loaded() -> bool:
    """Stop triton from loading if vispy (hence maybe Mesa's LLVM) is already in the process.

    Returns True when triton was blocked. Does nothing if triton is already imported
    (then the clash, if any, has already happened or cannot happen).
    """
    if "triton" in sys.modules or "vispy" not in sys.modules:
        return False
    sys.modules["triton"] = None  # type: ignore[assignment]  # makes `import triton` raise ImportError
    return True


def transforms_v2() -> ModuleType:
    """``torchvision.transforms.v2``, imported safely whatever was imported before."""
    block_triton_if_gl_loaded()
    from torchvision.transforms import v2

    return v2
