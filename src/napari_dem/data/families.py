"""Generated image families with exact ground truth, beyond bright nuclei on a dark field.

Why: the shipped default must work on images it was not tuned for. Real labelled
microscopy is scarce offline, so the benchmark panel (``benchmarks/bench_panel.py``)
and the training corpus of the default models (``scripts/train_default_model.py``)
both draw from these generators, with disjoint seed ranges (:data:`PANEL_SEEDS`
for the panel, :data:`TRAIN_SEEDS` for training), so that the panel measures
generalisation, not memory.

Each generator returns ``(image, truth)``; ``truth`` is an instance mask
(0 = background) for object families and a class map (1..K, by increasing mean
intensity where the classes differ in mean) for class families.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import ellipse

from .synthetic import NOISE_LEVELS, _place_objects

#: Seeds the benchmark panel and the auto-K evaluation use; training never draws from them.
PANEL_SEEDS = range(9000, 9999)
#: Seeds the training corpus draws from.
TRAIN_SEEDS = range(1000, 8999)


def _noise(level: str | float) -> float:
    return NOISE_LEVELS[level] if isinstance(level, str) else float(level)


def _illumination(shape: tuple[int, ...], strength: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative illumination field around 1 (a tilt plus a broad vignette)."""
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    tilt = sum(rng.uniform(-0.5, 0.5) * g for g in grids)
    vignette = sum(g**2 for g in grids) / len(grids)
    return 1.0 + strength * (tilt - 0.3 * vignette)


def _finish(clean: np.ndarray, noise: float, rng: np.random.Generator, photons: float = 300.0) -> np.ndarray:
    """Poisson shot noise plus Gaussian read noise, clipped at 0, scaled to [0, 1] as float32."""
    noisy = rng.poisson(np.clip(clean, 0, None) * photons) / photons
    noisy = np.clip(noisy + rng.normal(scale=noise, size=clean.shape), 0, None)
    return (noisy / max(float(noisy.max()), 1e-9)).astype(np.float32)


def objects_image(
    shape: tuple[int, ...] = (256, 256),
    *,
    radius: tuple[float, float] = (6.0, 14.0),
    polarity: str = "bright",
    coverage: float = 0.3,
    illumination: float = 0.4,
    noise: str | float = "medium",
    overlap: float = 0.15,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Textured blobs on a flat field: bright on dark (fluorescence) or dark on bright
    (brightfield, phase contrast, stained nuclei on a bright slide).

    ``coverage`` is the fraction of the field the objects are asked to cover (above 0.5
    the objects are the majority and touch).
    """
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    mask, signal = _textured_blobs(shape, radius, coverage, overlap, rng)
    signal = ndi.gaussian_filter(signal, 1.0)
    illum = _illumination(shape, illumination, rng)
    if polarity == "bright":
        clean = (0.1 + 0.8 * signal) * illum
    elif polarity == "dark":
        clean = (0.85 - 0.6 * signal) * illum
    else:
        raise ValueError(f"polarity must be bright or dark, got {polarity!r}")
    return _finish(clean, _noise(noise), rng), mask


def _textured_blobs(
    shape: tuple[int, ...],
    radius: tuple[float, float],
    coverage: float,
    overlap: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(instance mask, unblurred signal) of random ellipsoids covering about ``coverage`` of
    the field (more are asked for above 0.45, where they crowd), each at its own brightness in
    0.35-1 with a grain of a quarter of it; the draws :func:`objects_image` and
    :func:`nuclei_with_nucleoli` share."""
    mean_vol = np.prod([np.mean(radius)] * len(shape)) * (np.pi if len(shape) == 2 else 4.19)
    n = max(1, int(coverage * np.prod(shape) / mean_vol * (1.6 if coverage > 0.45 else 1.0)))
    mask = _place_objects(shape, n, radius, rng, overlap=overlap)
    brightness = np.concatenate([[0.0], rng.uniform(0.35, 1.0, size=int(mask.max()))])
    grain = ndi.gaussian_filter(rng.normal(size=shape), 1.5)
    return mask, brightness[mask] * (1.0 + 0.25 * grain / (grain.std() + 1e-9))


def nuclei_with_nucleoli(
    shape: tuple[int, ...] = (512, 512),
    *,
    radius: tuple[float, float] = (15.0, 25.0),
    coverage: float = 0.25,
    nucleoli: float = 0.25,
    chromocentres: float = 2.2,
    noise: str | float = "medium",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """DAPI-like nuclei as a confocal or widefield image shows them: each with one to three
    dark nucleoli (discs or balls of 15-30 % of its radius, at ``nucleoli`` of its brightness,
    some touching its edge), three to eight bright chromocentres (1.5-2.5 px, at
    ``chromocentres`` times its brightness), a slightly brighter rim, and brightness varying
    threefold between nuclei; on a dim, unevenly lit field.

    Why: ``objects_image``'s blobs have an even grain; real nuclei have holes and spots that
    an intensity threshold cuts out (notches, holes), which shrinks any size estimate read off
    a threshold and split a nucleus where its nucleolus meets its edge.
    """
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    mask, signal = _textured_blobs(shape, radius, coverage, 0.1, rng)
    inside = mask > 0
    rim = 1.0 + 0.3 * np.exp(-ndi.distance_transform_edt(inside) / 2.0)
    signal = signal * np.where(inside, rim, 1.0)
    factor = np.ones(shape)
    for i, box in enumerate(ndi.find_objects(mask), 1):
        if box is None:
            continue
        points = np.argwhere(mask[box] == i)
        grids = np.ogrid[tuple(slice(0, b.stop - b.start) for b in box)]
        spots = [(rng.uniform(0.15, 0.3) * np.mean(radius), nucleoli) for _ in range(rng.integers(1, 4))]
        spots += [(rng.uniform(1.5, 2.5), chromocentres) for _ in range(rng.integers(3, 9))]
        local = factor[box]
        for r, level in spots:
            centre = points[rng.integers(len(points))]
            disc = sum(((g - c) / r) ** 2 for g, c in zip(grids, centre, strict=True)) <= 1
            local[disc] = np.minimum(local[disc], level) if level < 1 else np.maximum(local[disc], level)
    signal = ndi.gaussian_filter(signal * np.where(inside, factor, 1.0), 1.0)
    clean = (0.1 + 0.6 * signal) * _illumination(shape, 0.3, rng)
    return _finish(clean, _noise(noise), rng), mask


def _region_map(shape: tuple[int, ...], n_classes: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Classes 1..n as the argmax of smooth random fields: blobby regions of about ``scale`` px."""
    fields = np.stack([ndi.gaussian_filter(rng.normal(size=shape), scale) for _ in range(n_classes)])
    return (np.argmax(fields, axis=0) + 1).astype(np.int32)


def classes_image(
    shape: tuple[int, ...] = (256, 256),
    *,
    n_classes: int = 3,
    contrast: str = "mean",
    separation: float = 3.0,
    scale: float = 12.0,
    noise: float = 0.04,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A tissue-class phantom: regions of ``n_classes`` classes.

    ``contrast="mean"``: classes differ in mean intensity by ``separation`` noise standard
    deviations between neighbours in intensity (truth ordered by mean). ``"texture"``: the
    classes share one mean and differ only in texture (grain size and amplitude).
    """
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    truth = _region_map(shape, n_classes, scale, rng)
    if contrast == "mean":
        means = 0.2 + separation * noise * np.arange(n_classes)
        grain = ndi.gaussian_filter(rng.normal(size=shape), 1.0)
        clean = means[truth - 1] + 0.3 * noise * grain / (grain.std() + 1e-9)
        img = clean + rng.normal(scale=noise, size=shape)
    elif contrast == "texture":
        img = np.full(shape, 0.5)
        for c in range(1, n_classes + 1):
            grain_sigma = 0.7 * 2.2 ** (c - 1)
            amp = 0.06 * (1.0 + 0.8 * (c - 1))
            g = ndi.gaussian_filter(rng.normal(size=shape), grain_sigma)
            img = np.where(truth == c, 0.5 + amp * g / (g.std() + 1e-9), img)
        img = img + rng.normal(scale=noise / 2, size=shape)
    else:
        raise ValueError(f"contrast must be mean or texture, got {contrast!r}")
    img = np.clip(img, 0, None)
    return (img / img.max()).astype(np.float32), truth


def he_image(shape: tuple[int, int] = (384, 384), *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An H&E-like RGB stain (YXC, uint8): dark purple nuclei on pink stroma and white gaps.

    The nuclei are the darkest class: a "darkest = background" rule finds nothing here.
    """
    rng = np.random.default_rng(seed)
    mask = _place_objects(shape, int(0.18 * np.prod(shape) / (np.pi * 36)), (4.0, 8.0), rng, 0.1)
    tissue = ndi.gaussian_filter(rng.normal(size=shape), 14) > -0.35
    white, pink, purple = (
        np.array([0.96, 0.94, 0.96]),
        np.array([0.92, 0.62, 0.78]),
        np.array([0.36, 0.22, 0.5]),
    )
    fibre = ndi.gaussian_filter(rng.normal(size=shape), 2.0)
    fibre = 0.08 * fibre / (fibre.std() + 1e-9)
    base = np.where(tissue[..., None], pink + fibre[..., None] * np.array([0.2, 0.8, 0.5]), white)
    chrom = ndi.gaussian_filter(rng.normal(size=shape), 1.0)
    nuc = ndi.gaussian_filter((mask > 0).astype(float), 0.8)[..., None]
    nuclei = purple * (1.0 + 0.15 * (chrom / (chrom.std() + 1e-9)))[..., None]
    rgb = base * (1 - nuc) + nuclei * nuc
    rgb = rgb + rng.normal(scale=0.03, size=rgb.shape)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8), mask


#: Optical density per unit of haematoxylin and of eosin in R, G, B (the Beer-Lambert colours
#: the H&E generators paint with: blue-purple and pink).
HAEMATOXYLIN_OD = np.array([1.04, 1.12, 0.46])
EOSIN_OD = np.array([0.04, 0.59, 0.07])


def stain_rgb(haematoxylin: np.ndarray, eosin: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A brightfield RGB image (uint8, YXC) of two stain amounts by Beer-Lambert: light through
    the densities of both, on a slightly off-white light, with 2 % noise per channel."""
    density = haematoxylin[..., None] * HAEMATOXYLIN_OD + eosin[..., None] * EOSIN_OD
    rgb = np.array([0.95, 0.93, 0.95]) * np.exp(-density) + rng.normal(0, 0.02, (*haematoxylin.shape, 3))
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def he_glands(shape: tuple[int, int] = (512, 512), *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Glandular H&E (YXC uint8) and its nuclei (instances): rings of epithelium whose cytoplasm
    takes up haematoxylin too, packed with columnar nuclei (16-24 x 8-12 px), around white
    lumens, in pink fibrous stroma with spindle nuclei and lymphocytes.

    Why: the nuclei of an epithelium are hardly darker than its cytoplasm, and the whole ring
    is darker than the stroma, so the channel mean reads glands, not nuclei (the case of a
    real H&E the default once read as classes); the haematoxylin separates them.
    """
    rng = np.random.default_rng(seed)
    truth = np.zeros(shape, np.int32)
    amount = np.zeros(shape)
    epithelium, lumen = np.zeros(shape, bool), np.zeros(shape, bool)
    centres = []
    for _ in range(rng.integers(2, 5)):
        c = rng.uniform(60, np.array(shape) - 60)
        a, b, turn = *rng.uniform(60, 120, 2), rng.uniform(0, np.pi)
        epithelium[ellipse(c[0], c[1], a, b, shape=shape, rotation=turn)] = True
        lumen[ellipse(c[0], c[1], a / 2, b / 2, shape=shape, rotation=turn)] = True
        centres.append(c)
    epithelium &= ~lumen

    def place(inside: np.ndarray, tries: int, draw, level: tuple[float, float]) -> None:
        spots = np.argwhere(inside)
        for i in range(tries):
            p = spots[rng.integers(len(spots))]
            rr, cc = draw(p, i)
            if inside[rr, cc].all() and not truth[rr, cc].any():
                truth[rr, cc] = truth.max() + 1
                amount[rr, cc] = rng.uniform(*level)

    def columnar(p, _):  # long axis towards the gland's centre
        c = min(centres, key=lambda q: np.hypot(*(p - q)))
        turn = -np.arctan2(p[1] - c[1], p[0] - c[0])
        return ellipse(p[0], p[1], rng.uniform(8, 12), rng.uniform(4, 6), shape=shape, rotation=turn)

    def stromal(p, i):  # every third a round lymphocyte, the others spindles
        radii = rng.uniform(3, 4, 2) if i % 3 == 0 else (rng.uniform(2.5, 3.5), rng.uniform(6, 10))
        return ellipse(p[0], p[1], *radii, shape=shape, rotation=rng.uniform(0, np.pi))

    place(epithelium, 4000, columnar, (0.35, 0.7))
    place(~epithelium & ~lumen, 150, stromal, (0.9, 1.3))
    grain = 1 + 0.3 * ndi.gaussian_filter(rng.normal(size=shape), 1.0) / 0.28
    cytoplasm = ndi.gaussian_filter(rng.normal(size=shape), 2)
    cytoplasm = 0.45 * (1 + 0.25 * cytoplasm / cytoplasm.std())
    haematoxylin = ndi.gaussian_filter(amount * grain, 0.8) + np.where(epithelium, cytoplasm, 0.0)
    fibre = ndi.gaussian_filter(rng.normal(size=shape), (1, 4))
    eosin = np.where(lumen, 0.03, np.where(epithelium, 0.6, 0.45 + 0.2 * fibre / fibre.std()))
    return stain_rgb(haematoxylin, ndi.gaussian_filter(np.clip(eosin, 0, None), 1.0), rng), truth


def brain_phantom(
    shape: tuple[int, int, int] = (48, 96, 96), *, noise: float = 0.04, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """An MRI-like 3D tissue phantom, 4 classes: outside (1), CSF (2), grey (3), white matter (4).

    Nested, randomly deformed ellipsoids with a smooth bias field: classes that differ
    in mean intensity, in shells that are thin in places (the CSF).
    """
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    wobble = ndi.gaussian_filter(rng.normal(size=shape), 6)
    wobble = 0.08 * wobble / (wobble.std() + 1e-9)
    radii = rng.uniform(0.8, 0.95, size=3)
    r = np.sqrt(sum((g / a) ** 2 for g, a in zip(grids, radii, strict=True))) + wobble
    folds = ndi.gaussian_filter(rng.normal(size=shape), 3)
    folds = 0.1 * folds / (folds.std() + 1e-9)
    truth = np.ones(shape, dtype=np.int32)
    truth[r < 0.95] = 2
    truth[r < 0.85] = 3
    truth[r + folds < 0.6] = 4
    means = np.array([0.02, 0.25, 0.5, 0.75])
    bias = _illumination(shape, 0.3, rng)
    clean = means[truth - 1] * bias
    return _finish(clean, noise, rng, photons=500.0), truth


def anisotropic_nuclei(
    shape: tuple[int, int, int] = (64, 128, 128),
    *,
    radius: tuple[float, float] = (12.0, 18.0),
    z_step: int = 2,
    noise: str | float = "medium",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Large 3D nuclei (25-35 px across) imaged with ``z_step`` times coarser Z sampling,
    like a confocal stack: (image, instance mask, voxel size ZYX)."""
    img, mask = objects_image(shape, radius=radius, coverage=0.25, noise=noise, seed=seed, illumination=0.3)
    return img[::z_step], mask[::z_step], (float(z_step), 1.0, 1.0)
