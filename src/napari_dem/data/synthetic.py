"""Synthetic fluorescence nuclei with exact instance ground truth, in 2D, 3D and 2D+time.

Used to train the shipped default model, for the sample data of the plugin, for
tests with exact ground truth, and for the generalisation benchmark (with seeds
never used in training). Nuclei are ellipses/ellipsoids of varied size and
brightness (some touching), blurred by a Gaussian PSF, on an uneven background,
with Poisson shot noise and Gaussian read noise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

NOISE_LEVELS = {"low": 0.02, "medium": 0.06, "high": 0.12}


def _place_objects(
    shape: tuple[int, ...], n: int, radius: tuple[float, float], rng: np.random.Generator, overlap: float
) -> np.ndarray:
    """Instance mask of up to ``n`` random ellipsoids; later objects do not overwrite earlier ones."""
    mask = np.zeros(shape, dtype=np.int32)
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    placed = 0
    for _ in range(n * 4):
        if placed >= n:
            break
        r = rng.uniform(*radius, size=len(shape))
        if len(shape) == 3:
            r[0] *= rng.uniform(0.6, 1.0)  # a little anisotropy in depth
        c = [rng.uniform(0, s) for s in shape]
        # Random rotation in the YX plane.
        th = rng.uniform(0, np.pi)
        dy, dx = grids[-2] - c[-2], grids[-1] - c[-1]
        u = dy * np.cos(th) + dx * np.sin(th)
        v = -dy * np.sin(th) + dx * np.cos(th)
        q = (u / r[-2]) ** 2 + (v / r[-1]) ** 2
        if len(shape) == 3:
            q = q + ((grids[0] - c[0]) / r[0]) ** 2
        obj = q <= 1.0
        if not obj.any():
            continue
        clash = (mask[obj] > 0).mean()
        if clash > overlap:
            continue
        placed += 1
        mask[obj & (mask == 0)] = placed
    return mask


def synthetic_nuclei(
    shape: tuple[int, ...] = (256, 256),
    *,
    n_objects: int | None = None,
    radius: tuple[float, float] = (6.0, 14.0),
    noise: str | float = "medium",
    seed: int = 0,
    dtype: type = np.uint16,
    illumination: float = 0.4,
) -> tuple[np.ndarray, np.ndarray]:
    """(image, instance labels) of synthetic nuclei in 2D (``(Y, X)``) or 3D (``(Z, Y, X)``).

    ``illumination`` is the strength of the linear illumination gradient across the field
    (0.4: mild; 1.0: the background at one edge is several times that at the other).
    """
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"shape must be 2D or 3D, got {shape}")
    sigma_noise = NOISE_LEVELS[noise] if isinstance(noise, str) else float(noise)
    if n_objects is None:
        mean_vol = np.prod([np.mean(radius)] * len(shape)) * (np.pi if len(shape) == 2 else 4.19)
        n_objects = max(1, int(0.3 * np.prod(shape) / mean_vol))
    mask = _place_objects(shape, n_objects, radius, rng, overlap=0.15)
    n = int(mask.max())
    brightness = np.concatenate([[0.0], rng.uniform(0.3, 1.0, size=n)])
    signal = brightness[mask]
    # Chromatin texture inside nuclei.
    texture = ndi.gaussian_filter(rng.normal(size=shape), 1.5)
    signal = signal * (1.0 + 0.25 * texture / (texture.std() + 1e-9))
    signal = ndi.gaussian_filter(signal, 1.0)  # PSF
    # Uneven illumination and background.
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    tilt = sum(rng.uniform(-0.5, 0.5) * g for g in grids)
    illum = 1.0 + illumination * tilt
    background = 0.08 + 0.06 * (illumination / 0.4) * (tilt + 1) / 2
    clean = signal * illum + background
    photons = 200.0
    noisy = rng.poisson(np.clip(clean, 0, None) * photons) / photons
    noisy = noisy + rng.normal(scale=sigma_noise, size=shape)
    noisy = np.clip(noisy, 0, None)
    img = noisy / max(noisy.max(), 1e-9)
    if np.issubdtype(dtype, np.integer):
        img = (img * (np.iinfo(dtype).max * 0.8)).astype(dtype)
    else:
        img = img.astype(dtype)
    return img, mask


def synthetic_timelapse(
    n_frames: int = 8, shape: tuple[int, int] = (128, 128), *, seed: int = 0, noise: str = "medium"
) -> tuple[np.ndarray, np.ndarray]:
    """(T, Y, X) image and labels: the same nuclei drifting and slowly bleaching over time."""
    img, mask = synthetic_nuclei(shape, seed=seed, noise=noise)
    rng = np.random.default_rng(seed + 1)
    frames, masks = [], []
    for t in range(n_frames):
        shift = (t * 1.5, t * 0.8)
        m = ndi.shift(mask, shift, order=0, mode="constant")
        f = ndi.shift(img.astype(np.float32), shift, order=1, mode="nearest") * (1.0 - 0.03 * t)
        f = f + rng.normal(scale=0.01 * f.max(), size=f.shape)
        frames.append(np.clip(f, 0, None))
        masks.append(m)
    return np.stack(frames).astype(np.float32), np.stack(masks)
