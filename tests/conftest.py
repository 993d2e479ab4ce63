"""Shared fixtures: tiny images and a tiny, quickly trained model keep the suite fast on 2 cores."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
# The CLI logs to the user's log directory: keep the tests' logs out of the home directory.
os.environ.setdefault("NAPARI_DEM_LOG_DIR", tempfile.mkdtemp(prefix="napari-dem-test-logs-"))


@pytest.fixture(scope="session")
def nuclei2d() -> tuple[np.ndarray, np.ndarray]:
    from napari_dem.data.synthetic import synthetic_nuclei

    return synthetic_nuclei((128, 128), noise="medium", seed=11)


@pytest.fixture(scope="session")
def nuclei3d() -> tuple[np.ndarray, np.ndarray]:
    from napari_dem.data.synthetic import synthetic_nuclei

    return synthetic_nuclei((24, 64, 64), noise="low", radius=(5.0, 9.0), seed=12)


@pytest.fixture
def tiny_model():
    """A small untrained 2D DEM model (fresh per test: training tests change it)."""
    from napari_dem.core.model import DEMConfig, DEMModel

    torch.manual_seed(0)
    return DEMModel(DEMConfig(width=4, latent_dim=2, context_sigma=4.0, em_steps=3))


@pytest.fixture(autouse=True)
def _private_widget_settings(tmp_path_factory):
    """Widgets remember settings in a QSettings file: every test gets an empty one of its own,
    so tests start from the defaults and never read or write the user's real settings."""
    try:
        from qtpy.QtCore import QSettings
    except Exception:  # no Qt binding: nothing can touch settings
        yield
        return
    folder = tmp_path_factory.mktemp("qsettings")
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    yield folder


@pytest.fixture(autouse=True)
def _frozen_heap():
    """Every object alive before a test (torch, napari, Qt: millions) is moved out of the
    garbage collector's reach: napari's canvas runs a full ``gc.collect()`` whenever a layer
    goes, and each took 0.4 s traversing imported modules, ~1 s of every GUI test's teardown.
    Objects a test creates are still collected, so leak checks see what they saw before."""
    import gc

    gc.freeze()
    yield
