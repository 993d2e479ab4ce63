"""The training loop: losses go down, weights change, seeds reproduce, cancel keeps a model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from napari_dem.core.progress import CancelToken
from napari_dem.core.train import TrainSettings, fine_tune, training_units

FAST = {"batch_size": 2, "patch_size": 32, "lr": 5e-3}


def test_losses_go_down_and_weights_change(tiny_model, nuclei2d) -> None:
    img, _ = nuclei2d
    units = training_units(img, "YX", 2)
    before = copy.deepcopy(tiny_model.state_dict())
    hist = fine_tune(tiny_model, units, TrainSettings(steps=40, seed=0, **FAST), device="cpu")
    total = hist.series("total")
    assert np.mean(total[-8:]) < np.mean(total[:8])
    assert any(not torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())
    assert set(hist.steps[0].losses) == {"total", "nll", "entropy", "recon"}


def test_same_seed_same_weights(nuclei2d) -> None:
    from napari_dem.core.model import DEMConfig, DEMModel

    img, _ = nuclei2d
    units = training_units(img, "YX", 2)
    states = []
    for _ in range(2):
        torch.manual_seed(123)
        model = DEMModel(DEMConfig(width=4, latent_dim=2, context_sigma=4.0, em_steps=3))
        fine_tune(model, units, TrainSettings(steps=6, seed=7, **FAST), device="cpu")
        states.append(model.state_dict())
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k


def test_training_leaves_torchs_global_generator_alone(tiny_model, nuclei2d) -> None:
    """Augmentations and EM draw from local generators: the global one is neither seeded nor
    used, so a training in one thread cannot change another thread's random numbers."""
    img, _ = nuclei2d
    torch.manual_seed(99)
    before = torch.get_rng_state()
    fine_tune(tiny_model, training_units(img, "YX", 2), TrainSettings(steps=3, seed=7, **FAST), device="cpu")
    assert torch.equal(torch.get_rng_state(), before)


def test_cancel_keeps_best_weights_and_a_usable_model(tiny_model, nuclei2d) -> None:
    from napari_dem.core.segment import segment

    img, _ = nuclei2d
    token = CancelToken()
    seen = []

    def progress(rec):
        seen.append(rec.step)
        if rec.step == 12:
            token.cancel()

    hist = fine_tune(
        tiny_model,
        training_units(img, "YX", 2),
        TrainSettings(steps=500, **FAST),
        device="cpu",
        progress=progress,
        cancel=token,
    )
    assert hist.cancelled and seen[-1] == 12 and 1 <= hist.best_step <= 12
    labels = segment(img, "YX", model=tiny_model, n_clusters=3, task="classes", device="cpu").labels
    assert labels.shape == img.shape and labels.max() == 3


def test_3d_training_units_and_step(nuclei3d) -> None:
    from napari_dem.core.model import DEMConfig, DEMModel

    img, _ = nuclei3d
    units = training_units(img, "ZYX", 3)
    assert len(units) == 1 and units[0].shape == (1, *img.shape)
    model = DEMModel(DEMConfig(ndim=3, width=4, latent_dim=2, context_sigma=3.0, em_steps=2))
    hist = fine_tune(model, units, TrainSettings(steps=2, batch_size=1, patch_size=16), device="cpu")
    assert len(hist.steps) == 2 and np.isfinite(hist.series()).all()


def test_bad_settings_are_rejected(tiny_model, nuclei2d) -> None:
    img, _ = nuclei2d
    units = training_units(img, "YX", 2)
    for bad in ({"steps": 0}, {"lr": 5.0}, {"patch_size": 4}, {"batch_size": 0}):
        with pytest.raises(ValueError):
            fine_tune(tiny_model, units, TrainSettings(**bad), device="cpu")
    with pytest.raises(ValueError, match="no training images"):
        fine_tune(tiny_model, [], TrainSettings(steps=1), device="cpu")
