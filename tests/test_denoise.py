"""Very noisy images are smoothed before the fit (core/denoise.py): which images, by how much,
and what a default run then finds in a photon-starved field (it found nothing before)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_dem.api import segment_image
from napari_dem.core.denoise import SIGMA_RANGE, read_denoised, smoothing_sigma
from napari_dem.core.layout import parse_axes
from napari_dem.core.metrics import foreground_iou, instance_f1
from napari_dem.data.families import objects_image


def _photons(photons: float, seed: int, polarity: str = "bright", radius=(6.0, 14.0)):
    """(uint16 counts, truth): objects at up to ``photons`` counts over a background of 0.5."""
    img, truth = objects_image((192, 192), polarity=polarity, noise="low", radius=radius, seed=seed)
    rate = (img - img.min()) / np.ptp(img) * photons + 0.5
    return np.random.default_rng(seed).poisson(rate).astype(np.uint16), truth


def _sigma(image: np.ndarray, axes: str = "YX") -> float:
    return smoothing_sigma(image, parse_axes(axes, image.shape))


def test_images_clear_of_their_noise_are_not_smoothed() -> None:
    from napari_dem._sample_data import SAMPLES

    dsb, _ = SAMPLES["nuclei2d"]()
    assert _sigma(np.asarray(dsb)) == 0.0
    clean, _ = objects_image((192, 192), noise="medium", seed=1)
    assert _sigma(clean) == 0.0
    assert _sigma(np.full((64, 64), 7, dtype=np.uint8)) == 0.0  # no noise at all
    assert _sigma(_photons(40, seed=2)[0]) == 0.0  # 40 photons: clear enough


def test_the_blur_follows_the_objects_size() -> None:
    """Objects of radius 6-14 px at 3 photons get the widest blur; spots of radius 2-3 px in the
    same noise a narrower one (a 2 px blur erases them)."""
    big = _sigma(_photons(3, seed=3)[0])
    small = _sigma(_photons(3, seed=3, radius=(2.0, 3.0))[0])
    assert 1.5 < big <= SIGMA_RANGE[1]  # measured 1.93
    assert SIGMA_RANGE[0] <= small < 1.2  # measured 1.01


def test_only_arrays_in_memory_are_smoothed_and_the_input_is_left_alone() -> None:
    counts, _ = _photons(3, seed=4)
    assert _sigma(counts) > 0
    lazy = da.from_array(counts, chunks=64)
    layout = parse_axes("YX", counts.shape)
    assert read_denoised(lazy, layout) == (lazy, 0.0)
    before = counts.copy()
    smoothed, sigma = read_denoised(counts, layout)
    assert np.array_equal(counts, before) and smoothed.dtype == np.float32 and sigma > 0
    assert smoothed.std() < 0.8 * counts.std()


def test_channels_are_smoothed_each_on_its_own() -> None:
    """A two-channel noisy image: each channel is blurred in Y and X, none mixed with another."""
    a, _ = _photons(3, seed=5)
    rgb_like = np.stack([a, np.zeros_like(a)], axis=-1)
    smoothed, sigma = read_denoised(rgb_like, parse_axes("YXC", rgb_like.shape))
    assert sigma > 0
    assert np.all(smoothed[..., 1] == 0)  # the empty channel stays empty


@pytest.mark.parametrize(("polarity", "seed"), [("bright", 9520), ("dark", 9521)])
def test_objects_are_found_in_a_photon_starved_field(polarity: str, seed: int) -> None:
    """5 photons at the brightest object: the default read dark objects as "no objects" (F1 0.00)
    and bright ones as speckles (F1 0.58 here); smoothed, 0.85 and 0.99."""
    counts, truth = _photons(5, seed=seed, polarity=polarity)
    out = segment_image(counts, "YX", device="cpu", instances=True)
    d = out.semantic.decision
    assert d.task == "objects" and "smoothed" in d.reason
    assert foreground_iou(out.labels > 0, truth > 0) > 0.7
    assert instance_f1(out.labels, truth) > 0.7


def test_noise_alone_is_not_smoothed_and_stays_no_objects() -> None:
    """Noise alone is far under the ratio's bar, but holds no structure beyond its noise (its
    band-pass spreads as white noise does): smoothed, the noise on a lit ramp was read as two
    classes of its ramp."""
    rng = np.random.default_rng(1)
    ramp = 0.3 + 0.4 * np.mgrid[:192, :192][1] / 192
    for field in (rng.poisson(20 * ramp).astype(np.uint16), rng.normal(0.5, 0.1, (192, 192))):
        assert _sigma(field) == 0.0
        out = segment_image(field, "YX", device="cpu")
        assert out.semantic.decision.objects == () and not out.labels.any()


def test_a_smoothed_fit_predicts_smoothed_also_after_save_and_load(tmp_path) -> None:
    """The choice to smooth is part of the fit: predict (here after a save and a load) reads the
    image as the fit did, and gives the labels fit_predict gave."""
    from napari_dem.core.segmenter import DEMSegmenter

    counts, _ = _photons(5, seed=9521, polarity="dark")
    seg = DEMSegmenter(device="cpu")
    labels = seg.fit_predict(counts, "YX")
    assert seg.denoise_ and "smoothed" in seg.decision_.reason
    loaded = DEMSegmenter.load(seg.save(tmp_path / "noisy.dem"), device="cpu")
    assert loaded.denoise_
    assert np.array_equal(loaded.predict(counts, "YX"), labels)
    clean, _ = objects_image((128, 128), seed=1)
    assert not DEMSegmenter(device="cpu").fit(clean, "YX").denoise_
