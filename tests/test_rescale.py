"""core/rescale.py: which objects are shrunk, to what size, and that shrinking adds nothing at
the borders."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dem.core.rescale import MODEL_RADIUS, RESCALE_ABOVE, TARGET_RADIUS, shrink, zoom_for


@pytest.mark.parametrize(("side", "factor"), [(256, 0.61), (256, 0.69), (512, 0.41), (120, 0.86)])
def test_a_shrunk_flat_image_stays_flat_to_its_last_row_and_column(side: int, factor: float) -> None:
    """For these sizes SciPy's zoom samples a hair past the last pixel; read as 0 there, the
    shrunk image had a black last row or column (a dark object along the border)."""
    image = np.full((side, side + 7), 0.7, dtype=np.float32)
    small = shrink(image, "YX", factor)
    assert small.shape == (round(side * factor), round((side + 7) * factor))
    np.testing.assert_allclose(small, 0.7, atol=1e-6)
    volume = np.full((40, side // 2, side // 2), 0.3, dtype=np.float32)
    np.testing.assert_allclose(shrink(volume, "ZYX", factor, 0.5), 0.3, atol=1e-6)


def test_objects_above_the_bar_are_shrunk_to_the_target_radius() -> None:
    bar = RESCALE_ABOVE["2d"] * MODEL_RADIUS["2d"]
    assert zoom_for(bar, "2d") == 1.0 and zoom_for(0.0, "2d") == 1.0
    for radius in (bar + 0.1, 20.0, 45.0):
        assert zoom_for(radius, "2d") * radius == pytest.approx(TARGET_RADIUS["2d"])
    assert zoom_for(12.0, "3d") * 12.0 == pytest.approx(TARGET_RADIUS["3d"])
