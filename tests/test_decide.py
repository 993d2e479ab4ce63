"""The wide blur that flattens uneven illumination before objects are sized equals SciPy's."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_dem.core.decide import wide_gaussian


@pytest.mark.parametrize("shape", [(410, 410), (90, 37), (1, 40), (12, 30, 26)])
def test_wide_gaussian_equals_scipys_nearest_gaussian(shape: tuple) -> None:
    """A quarter of the side (the kernel longer than the plane, edges replicated far out) and
    a narrow one, on a plane with a ramp (what the blur is there to take out)."""
    rng = np.random.default_rng(len(shape))
    image = rng.random(shape) * 100 + np.linspace(0, 50, shape[-1])
    for sigma in (max(shape) / 4, 1.5):
        want = ndi.gaussian_filter(image, sigma, mode="nearest")
        np.testing.assert_allclose(wide_gaussian(image, sigma), want, rtol=0, atol=1e-9)
