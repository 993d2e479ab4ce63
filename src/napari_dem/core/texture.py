"""Texture classes: regions that differ in grain, not in brightness.

Why: tissue regions or material phases can share one mean intensity and differ only in
texture (grain size and amplitude). The intensity then has one mode, so the intensity rules
see one class, and the DEM latents do not separate them either (their local-contrast front
end answers to edges: on two-class texture phantoms the default scored a mean Dice of
0.35-0.57, where a mixture on the features below gives 0.92-0.94). So a fit may read the
image on these **texture features** instead: for each band ``s`` in :data:`SCALES` the log
of the local energy of the band-passed image, ``log(G_{w s} * (x - G_s * x)^2)``
(:data:`WINDOW` = w), a classic filter-bank texture descriptor (Laws; Unser) that is blind
to the mean by construction.

When a fit reads textures (:func:`texture_evidence`; 2D mode only): the intensity has a
single mode, the texture features hold at least two classes (:func:`count_texture_classes`),
and those classes' mean intensities differ by at most :data:`MAX_MEAN_GAP` of the intensity
range. Images of objects fail the last test: their texture classes are objects and
background, which differ in brightness. The rule looks at a central crop (bounded cost);
the texture features of every sampled point are computed only once textures are chosen.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from .em import GMMParams, e_step, fit_gmm
from .networks import gaussian_kernel1d
from .select import MAX_AUTO_K, density_modes

#: Band-pass scales (px): ``x - G_s * x`` for each ``s``.
SCALES: tuple[float, ...] = (1.0, 2.0, 4.0)
#: The local energy of band ``s`` is averaged over a Gaussian window of ``WINDOW * s``.
WINDOW = 3.0
#: Two texture classes are distinct when the density along the line between them dips below
#: this fraction of the lower peak. Chosen with :data:`WINDOW` on 54 development phantoms with
#: 2-4 texture classes (192 px with regions of 12 px, 256 px with 20 px; seeds 5300+ and
#: 5600+): the right count on 29 (window 2, ratio 0.6 / 0.7: 25 / 24; window 3, 0.6: 25;
#: window 4, 0.7 / 0.8: 15 / 17 of 36). Two classes are found on nearly every phantom; three
#: and four are often miscounted (boundary bands between regions form classes of their own,
#: and a coarse fourth texture is clipped at zero, which shifts its mean).
DIP_RATIO = 0.7
#: Texture classes whose mean intensities differ by more than this fraction of the intensity
#: range (1st to 99th percentile) are objects or intensity classes, not textures. Measured
#: (development images, seeds 5000+, and scikit-image's samples): 0.000-0.018 on two- and
#: three-class texture phantoms; on the images whose intensity has one mode and whose
#: features hold two or more texture classes, 0.062 (the grass photograph) and 0.12-0.55
#: (nuclei, dark objects, BBBC007, coins, text, moon, Hubble, ...).
MAX_MEAN_GAP = 0.03
#: Texture classes are regions, not speckles: labelled by the two-class mixture, points
#: :data:`COHERENCE_LAG` px apart share their class this much more often than chance would
#: have them (Cohen's kappa, along each axis of the probe's crop). Noise alone, whose log
#: energies a diagonal mixture also splits in two with a dip between (normal and Poisson noise
#: of 384-1024 px were read as two textures), measured 0.11-0.20; two- and three-texture
#: phantoms (regions of 12 and 20 px, 192-512 px) 0.34-0.67.
COHERENCE_LAG = 16
MIN_COHERENCE = 0.27
#: Points the texture mixtures are fitted on (a seeded subsample of the fit's sample).
POINTS = 8000
#: EM steps of the texture mixtures (more than a segmentation fit's: the count compares fits).
EM_STEPS = 30
_EPS = 1e-6


def halo() -> int:
    """Pixels of context one texture feature depends on (band-pass plus window)."""
    radius = 0
    for s in SCALES:
        radius = max(radius, _radius(s) + _radius(WINDOW * s))
    return radius


def _radius(sigma: float) -> int:
    return (gaussian_kernel1d(sigma).numel() - 1) // 2


def texture_features(
    grey: torch.Tensor, blur: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """``(*spatial, len(SCALES))`` log local band energies of a ``(1, 1, *spatial)`` image.

    ``blur(x, kernel)`` is a separable Gaussian with edge replication (the model's), so
    a tile read with :func:`halo` pixels of context gives the features of the whole image.
    """
    out = []
    for s in SCALES:
        band = grey - blur(grey, gaussian_kernel1d(s).to(grey))
        out.append(torch.log(blur(band * band, gaussian_kernel1d(WINDOW * s).to(grey)) + _EPS))
    return torch.stack(out, -1)[0, 0]


def roughness(features: torch.Tensor) -> torch.Tensor:
    """One number per point that orders texture classes from smooth to rough: the mean log energy."""
    return features.mean(-1)


def _fit(z: torch.Tensor, k: int, seed: int) -> GMMParams:
    gen = torch.Generator().manual_seed(int(seed))
    with torch.inference_mode():
        params, _, _ = fit_gmm(z.unsqueeze(0), k, EM_STEPS, reg_covar=1e-4, generator=gen)
    return params


def distinct(params: GMMParams, i: int, j: int, ratio: float | None = None) -> bool:
    """Whether components ``i`` and ``j`` are two modes: their two-Gaussian density along the
    discriminant direction (mean difference over the mean variance) dips between them."""
    w = params.log_weights[0].exp().double()
    mu, var = params.means[0].double(), params.variances[0].double()
    d = (mu[i] - mu[j]) / (0.5 * (var[i] + var[j]))
    m = torch.stack([mu[i] @ d, mu[j] @ d])
    v = torch.stack([(d * d * var[i]).sum(), (d * d * var[j]).sum()])
    spread = 3.0 * float(v.max().sqrt())
    t = torch.linspace(float(m.min()) - spread, float(m.max()) + spread, 512, dtype=torch.float64)
    dens = (w[[i, j]] * torch.exp(-0.5 * (t[:, None] - m) ** 2 / v) / v.sqrt()).sum(1)
    return density_modes(dens.numpy(), DIP_RATIO if ratio is None else ratio) >= 2


def count_texture_classes(
    z: torch.Tensor, seed: int = 0, max_k: int = MAX_AUTO_K, fit: Callable[[int], GMMParams] | None = None
) -> int:
    """The largest K in 2..``max_k`` whose diagonal mixture on the standardised features ``z``
    ``(N, F)`` has every pair of components :func:`distinct`; 1 when no K has. ``fit(k)``:
    the K-component mixture of ``z`` (a caller's cache of :func:`_fit`).

    The multivariate form of :func:`.select.count_modes`: a mixture with one component too
    many puts two of them inside one class, with no dip between them.
    """
    fit = fit or (lambda k: _fit(z, k, seed))
    best = 1
    for k in range(2, max_k + 1):
        if len(z) < 10 * k:
            break
        params = fit(k)
        if all(distinct(params, i, j) for i in range(k) for j in range(i + 1, k)):
            best = k
    return best


def texture_evidence(
    features: torch.Tensor,
    intensity: torch.Tensor,
    intensity_modes: int,
    seed: int = 0,
    shape: tuple[int, ...] | None = None,
) -> int:
    """How many texture classes the ``features`` ``(N, F)`` (denoised ``intensity`` ``(N,)``)
    of every pixel of a crop of ``shape`` hold by the rule of this module; 1 when the image is
    not read as textures (``shape`` None: points without places, not checked for coherence).

    The rule: the intensity has one mode, the features hold at least two texture classes
    (:func:`count_texture_classes`), their mean intensities differ by at most
    :data:`MAX_MEAN_GAP` of the intensity range, and the two-class labels form regions
    (:func:`coherence`). Cheap on most images: a two-class texture mixture comes first, and
    when its classes already differ in mean intensity by more than twice that (objects on a
    background), the count is not run.
    """
    if intensity_modes != 1 or len(features) < 20:
        return 1
    z, inten = _standardised(features, intensity, seed)
    fit = functools.cache(lambda k: _fit(z, k, seed))  # each K fitted once for the three steps
    if mean_gap(z, inten, fit(2)) > 2 * MAX_MEAN_GAP:
        return 1
    k = count_texture_classes(z, seed, fit=fit)
    if k < 2 or mean_gap(z, inten, fit(k)) > MAX_MEAN_GAP:
        return 1
    if shape is not None and coherence(features, fit(2), shape, seed) < MIN_COHERENCE:
        return 1
    return k


def coherence(features: torch.Tensor, params: GMMParams, shape: tuple[int, ...], seed: int) -> float:
    """Cohen's kappa of the two-class labels of every pixel (``features`` ``(N, F)`` of a crop of
    ``shape``, standardised as the subsample the mixture ``params`` was fitted on) between
    pixels :data:`COHERENCE_LAG` px apart along each axis; 1 on a crop too small to measure
    (nothing refuted)."""
    mean, std = _scale(features[_pick(len(features), seed)].double().cpu())
    scaled = (features.double().cpu() - mean) / std
    with torch.inference_mode():
        labels = e_step(scaled.unsqueeze(0), params)[0][0].argmax(-1).reshape(shape)
    lag = COHERENCE_LAG
    axes = [a for a, n in enumerate(shape) if n > 2 * lag]
    if not axes:
        return 1.0
    share = torch.bincount(labels.ravel(), minlength=params.n_components).double() / labels.numel()
    chance = float((share**2).sum())
    agree = sum(
        float((labels.narrow(a, lag, shape[a] - lag) == labels.narrow(a, 0, shape[a] - lag)).double().mean())
        for a in axes
    ) / len(axes)
    return (agree - chance) / max(1 - chance, 1e-12)


def _pick(n: int, seed: int) -> torch.Tensor:
    """The seeded subsample of :data:`POINTS` of ``n`` points the texture mixtures are fitted on."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))[:POINTS]


def _standardised(
    features: torch.Tensor, intensity: torch.Tensor, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded subsample of :data:`POINTS` points: features scaled to unit variance each (all
    are log energies; k-means seeding would otherwise follow the widest), and their intensity."""
    pick = _pick(len(features), seed)
    feats = features[pick].double().cpu()
    mean, std = _scale(feats)
    return (feats - mean) / std, intensity[pick].double().cpu()


def _scale(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, spread) per feature of the subsample ``feats`` ``(N, F)``: what standardises them."""
    return feats.mean(0), feats.std(0) + 1e-9


def mean_gap(z: torch.Tensor, intensity: torch.Tensor, params: GMMParams) -> float:
    """The spread (largest minus smallest) of the mean intensities of the classes of the
    texture mixture ``params`` on ``z``, as a fraction of the intensity range (1st to 99th
    percentile); inf when fewer than two classes keep points."""
    with torch.inference_mode():
        labels = e_step(z.unsqueeze(0), params)[0][0].argmax(-1)
    k = params.n_components
    means = torch.stack([intensity[labels == c].mean() for c in range(k) if bool((labels == c).any())])
    if len(means) < 2:
        return float("inf")
    gap = float(means.max() - means.min())
    span = float(torch.quantile(intensity, 0.99) - torch.quantile(intensity, 0.01))
    return gap / max(span, 1e-12)


__all__ = [
    "DIP_RATIO",
    "MAX_MEAN_GAP",
    "SCALES",
    "WINDOW",
    "count_texture_classes",
    "halo",
    "mean_gap",
    "roughness",
    "texture_evidence",
    "texture_features",
]
