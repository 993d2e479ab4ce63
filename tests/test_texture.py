"""Texture classes (core/texture.py): regions that differ in grain but not in mean are found at
default settings, and images of objects are not read as textures; each check has a known answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_dem.core.metrics import matched_class_dice
from napari_dem.core.networks import LocalContrast
from napari_dem.core.segmenter import DEMSegmenter
from napari_dem.core.texture import count_texture_classes, halo, texture_evidence, texture_features
from napari_dem.data.families import classes_image, objects_image
from napari_dem.data.synthetic import synthetic_nuclei

BLUR = LocalContrast(2, 16.0).blur


def _features(img: np.ndarray) -> torch.Tensor:
    return texture_features(torch.from_numpy(np.asarray(img, dtype=np.float32))[None, None], BLUR)


@pytest.fixture(scope="module")
def two_textures() -> tuple[np.ndarray, np.ndarray]:
    # a seed no development or training set uses (those are 1000-8999)
    return classes_image((192, 192), n_classes=2, contrast="texture", scale=20, seed=9080)


def test_texture_features_ignore_the_mean_and_follow_the_amplitude() -> None:
    rng = np.random.default_rng(0)
    img = rng.normal(size=(64, 64)).astype(np.float32)
    base = _features(img)
    assert torch.allclose(_features(img + 5.0), base, atol=1e-3)  # blind to the mean
    # energy scales with the square of the amplitude: log energy shifts by log(9)
    assert torch.allclose(_features(3.0 * img), base + np.log(9.0), atol=1e-3)


def test_texture_features_of_a_tile_with_its_halo_equal_the_whole_image() -> None:
    img = np.random.default_rng(1).normal(size=(200, 200)).astype(np.float32)
    whole = _features(img)
    h = halo()
    part = _features(img[60 - h : 140 + h, 60 - h : 140 + h])[h:-h, h:-h]
    assert torch.allclose(part, whole[60:140, 60:140], atol=1e-5)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_count_texture_classes_of_separated_clusters(k: int) -> None:
    rng = np.random.default_rng(k)
    centres = np.array([[0, 0, 0], [6, 0, 0], [0, 6, 0]], dtype=np.float64)[:k]
    points = np.concatenate([c + rng.normal(size=(1500, 3)) for c in centres])
    z = torch.from_numpy((points - points.mean(0)) / points.std(0))
    assert count_texture_classes(z) == k


def test_two_textures_of_one_mean_are_two_classes_by_default(two_textures) -> None:
    img, truth = two_textures
    seg = DEMSegmenter(device="cpu")
    labels = seg.fit_predict(img, "YX")
    d = seg.decision_
    assert (d.task, d.features, d.n_clusters, d.k_chosen) == ("classes", "texture", 2, True)
    assert "texture" in d.summary()
    # the intensity alone, as before texture classes, scored 0.35-0.57 on such phantoms
    assert matched_class_dice(labels, truth) > 0.85
    # label 1 is the smoother texture (lower local energy)
    feats = _features(img).mean(-1).numpy()
    assert feats[labels == 1].mean() < feats[labels == 2].mean()


def test_texture_classes_are_tiled_exactly_and_survive_save_and_load(two_textures, tmp_path: Path) -> None:
    img, _ = two_textures
    seg = DEMSegmenter(device="cpu").fit(img, "YX")
    whole = seg.predict(img, "YX")
    seg.tile_size_ = 64  # tiles with halos must give the same texture features
    assert np.array_equal(seg.predict(img, "YX"), whole)
    seg.tile_size_ = 512
    loaded = DEMSegmenter.load(seg.save(tmp_path / "texture.demseg"), device="cpu")
    assert loaded.decision_.features == "texture"
    assert np.array_equal(loaded.predict(img, "YX"), whole)


def test_three_textures_give_three_classes() -> None:
    img, truth = classes_image((256, 256), n_classes=3, contrast="texture", scale=20, seed=9081)
    seg = DEMSegmenter(device="cpu")
    labels = seg.fit_predict(img, "YX")
    assert (seg.decision_.features, seg.decision_.n_clusters) == ("texture", 3)
    assert matched_class_dice(labels, truth) > 0.75


def test_classes_task_and_k_given_use_textures_when_the_mean_says_nothing(two_textures) -> None:
    img, truth = two_textures
    seg = DEMSegmenter(device="cpu", n_clusters=2, task="classes")
    labels = seg.fit_predict(img, "YX")
    assert seg.decision_.features == "texture" and not seg.decision_.k_chosen
    assert matched_class_dice(labels, truth) > 0.85
    # asking for objects keeps the objects reading (textures are never objects)
    assert DEMSegmenter(device="cpu", task="objects").fit(img, "YX").decision_.features == "latent"


@pytest.mark.parametrize(
    ("make", "one_mode"),
    [
        (lambda: objects_image((256, 256), polarity="dark", illumination=0.6, seed=9082)[0], True),
        (lambda: synthetic_nuclei((256, 256), noise="high", seed=9083)[0], True),
        # its class boundaries make textures of one mean too: the intensity's modes keep it out
        (lambda: classes_image((256, 256), n_classes=3, seed=9084)[0], False),
    ],
    ids=["dark-objects", "nuclei", "classes-by-mean"],
)
def test_objects_and_mean_classes_are_not_read_as_textures(make, one_mode: bool) -> None:
    img = make()
    if one_mode:  # even where the intensity has one mode, the texture classes differ in mean
        feats = _features(img).reshape(-1, 3)
        inten = torch.from_numpy(np.asarray(img, dtype=np.float32)).reshape(-1)
        assert texture_evidence(feats, inten, intensity_modes=1) == 1
    assert DEMSegmenter(device="cpu").fit(img, "YX").decision_.features != "texture"


@pytest.mark.parametrize(("kind", "side"), [("normal", 700), ("poisson", 512)])
def test_noise_is_not_two_textures(kind: str, side: int) -> None:
    """A diagonal mixture splits the log energies of noise alone in two with a dip between, and
    these two fields were read as two textures (half the field painted by chance). Their two
    classes are speckles, not regions: labels 16 px apart agree about as often as chance has
    them, where two textures' regions agree far more often."""
    from napari_dem.core.texture import MIN_COHERENCE, _fit, _standardised, coherence

    rng = np.random.default_rng(2)
    img = rng.normal(0.5, 0.1, (side, side)) if kind == "normal" else rng.poisson(30, (side, side))
    seg = DEMSegmenter(device="cpu").fit(img.astype(np.float32), "YX")
    assert seg.decision_.features != "texture"
    assert (seg.decision_.task, seg.decision_.objects) == ("objects", ())  # no objects either

    def kappa(image: np.ndarray) -> float:
        feats = _features(image)[64:-64, 64:-64].reshape(-1, 3)
        z, _ = _standardised(feats, feats[:, 0], 0)
        return coherence(feats, _fit(z, 2, 0), (side - 128, side - 128), 0)

    assert kappa(img) < MIN_COHERENCE - 0.05
    textures, _ = classes_image((side, side), n_classes=2, contrast="texture", seed=9081)
    assert kappa(textures) > MIN_COHERENCE + 0.05
