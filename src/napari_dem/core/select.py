"""Model selection from the data: how many clusters, objects or classes, which clusters are objects.

Why here, and why these rules: a user presses Run without knowing what K or
"background" mean, so the fit decides them, from the same bounded sample the
mixture is fitted on (cheap on any image size). Each rule is a pure function of
numpy arrays, tested on its own:

- **K** = the number of *modes* of the denoised intensity distribution (the maxima of a
  1D Gaussian-mixture density estimate with :data:`DENSITY_COMPONENTS` components, two
  neighbouring maxima merged when the density has no clear dip between them; Hennig 2010),
  at most :data:`MAX_AUTO_K`. Criteria
  such as BIC pick the largest K on every image we tried, because pixel intensities
  are neither Gaussian nor independent; modes are what a person calls "classes".
- **Objects or classes**: objects are compact islands (at least :data:`MIN_OBJECTS` of
  them, mean solidity at least :data:`MIN_SOLIDITY`; or one or two of solidity at least
  :data:`FEW_OBJECTS_SOLIDITY`; none over :data:`MAX_ISLAND` of the
  field, each touching group split as for instances) in a background that covers at
  least :data:`MIN_BACKGROUND` of the field; with three or more clusters they must also
  be smaller than every background region (:data:`SIZE_RATIO`). The background is the darkest or the
  brightest cluster(s) (up to ``K - 1`` of them, from that end), whichever makes the
  most compact islands: that also decides the polarity (bright objects on dark,
  dark objects on bright). Anything else (tessellating regions, one object over a quarter
  of the field, nested shells) is classes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

#: Largest K the automatic choice considers.
MAX_AUTO_K = 6
#: Two neighbouring maxima of the density whose minimum between them stays above this
#: fraction of the lower one have no clear dip: they are one mode. (0.8 kept a shoulder on
#: the tail of a dark, zero-clipped background as a class of its own.)
DIP_RATIO = 0.7
#: Components of the density estimate: more than :data:`MAX_AUTO_K`, so that a large class
#: of non-Gaussian shape (a background clipped at zero) cannot use up the components a small
#: class needs (with 6, the MRI-like phantom's four classes were counted as three; with 10,
#: as four on every one of 20 seeds).
DENSITY_COMPONENTS = 10
#: Points of the 1D intensity mixture fit (a subsample of the fit's sample).
MODE_POINTS = 20_000
MIN_OBJECTS = 3
#: Fewer islands than :data:`MIN_OBJECTS` (one or two cells in view) are objects only when
#: they are this compact (mean solidity; two 3D cells 60 px across read 0.88-0.90 on the
#: sampling grid, the crescents of the tests 0.56).
FEW_OBJECTS_SOLIDITY = 0.85
MIN_SOLIDITY = 0.8
MIN_BACKGROUND = 0.2
#: No single object covers more than this fraction of the field; a piece that does is a "sea".
MAX_ISLAND = 0.25
#: With three or more clusters, objects are smaller than this fraction of every background region.
SIZE_RATIO = 0.6
#: Objects stand at least this many noise levels (:func:`contrast_to_noise`) from their
#: background. Readings of noise alone, split in two by the latents (an empty field, the grain
#: of a texture, a lone nucleus in a field the mixture split instead), measured 1.4-2.6; every
#: objects decision on the panel, its development seeds, the family cases and the disc images
#: 5.0 (the stardist volume) or more.
MIN_CONTRAST = 3.5
#: Islands the rule measures at most: beyond, it measures those in a central part of the plane
#: (thousands of islands say no more than hundreds, and each costs a watershed seed search and
#: a convex hull: 8 s of 12 on a 2048 px image of 2000 nuclei).
MAX_ISLANDS = 600


#: Bins of the histogram the 1D mixture is fitted on (:func:`_fit_1d_gmm`).
MODE_BINS = 2048


def _fit_1d_gmm(x: np.ndarray, k: int, rng: np.random.Generator, steps: int = 60) -> tuple[np.ndarray, ...]:
    """(weights, means, variances) of a 1D Gaussian mixture by EM from quantile starts.

    EM runs on a histogram of ``x`` (:data:`MODE_BINS` bins, each point at its bin's centre,
    weighted by its count), not on the points: 20 times faster (0.03 s against 0.5 s, which
    was most of a default run on a small image), and the bins are narrower than the
    variance floor's deviation, so the density keeps its shape (the same mode count as
    EM on the points for all 82 intensity samples of 74 images: the panel, its development
    seeds and 42 more class and object phantoms).
    """
    means = np.quantile(x, (np.arange(k) + 0.5) / k) + rng.normal(scale=1e-6, size=k)
    var = np.full(k, x.var() / k**2 + 1e-8)
    w = np.full(k, 1.0 / k)
    floor = 1e-4 * x.var() + 1e-12
    counts, edges = np.histogram(x, MODE_BINS)
    full = counts > 0
    centres = ((edges[:-1] + edges[1:]) / 2)[full][:, None]
    weight = counts[full].astype(np.float64)[:, None]
    for _ in range(steps):
        logp = np.log(w) - 0.5 * ((centres - means) ** 2 / var + np.log(2 * np.pi * var))
        logp -= logp.max(1, keepdims=True)
        r = np.exp(logp)
        r *= weight / r.sum(1, keepdims=True)
        nk = r.sum(0) + 1e-12
        w = nk / nk.sum()
        means = (r * centres).sum(0) / nk
        var = (r * (centres - means) ** 2).sum(0) / nk + floor
    return w, means, var


def density_modes(density: np.ndarray, ratio: float = DIP_RATIO, min_mass: float = 0.0) -> int:
    """Modes of a sampled 1D density: local maxima, where two neighbouring maxima count as one
    unless the density between them dips below ``ratio`` times the lower of the two. A mode
    that holds less than ``min_mass`` of the density (up to the lowest points between it and
    its neighbours) does not count: a few stray points far from the rest make a mode by the
    dip rule alone, however few they are."""
    return max(1, len(density_peaks(density, ratio, min_mass)))


def density_peaks(density: np.ndarray, ratio: float = DIP_RATIO, min_mass: float = 0.0) -> list[int]:
    """The indices of the modes :func:`density_modes` counts."""
    d = np.asarray(density, dtype=np.float64)
    inner = (d[1:-1] > d[:-2]) & (d[1:-1] >= d[2:])
    peaks = list(np.flatnonzero(inner) + 1)
    if d[0] > d[1]:
        peaks.insert(0, 0)
    if d[-1] > d[-2]:
        peaks.append(len(d) - 1)
    merged = True
    while merged and len(peaks) > 1:
        merged = False
        # Merge the shallowest valley first, so that the survivors are the prominent modes.
        depth = [d[a : b + 1].min() / min(d[a], d[b]) for a, b in itertools.pairwise(peaks)]
        i = int(np.argmax(depth))
        if depth[i] >= ratio:
            a, b = peaks[i], peaks[i + 1]
            peaks[i : i + 2] = [a if d[a] >= d[b] else b]
            merged = True
    while min_mass > 0 and len(peaks) > 1:
        mass = _mode_masses(d, peaks)
        i = int(np.argmin(mass))
        if mass[i] >= min_mass:
            break
        del peaks[i]  # its mass goes to its neighbours on the next count
    return peaks


def _valleys(d: np.ndarray, peaks: list[int]) -> list[int]:
    """Index of the lowest point of the density ``d`` between each two neighbouring ``peaks``."""
    return [a + int(np.argmin(d[a : b + 1])) for a, b in itertools.pairwise(peaks)]


def _mode_masses(d: np.ndarray, peaks: list[int]) -> np.ndarray:
    """Share of the density ``d`` under each of ``peaks``, split at the lowest point between
    neighbouring peaks."""
    bounds = [0, *_valleys(d, peaks), len(d)]
    return np.array([d[lo:hi].sum() for lo, hi in itertools.pairwise(bounds)]) / d.sum()


def count_modes(
    values: np.ndarray, seed: int = 0, components: int = DENSITY_COMPONENTS, min_mass: float = 0.0
) -> int:
    """Number of modes of ``values`` (1D): the prominent maxima of a ``components``-component
    Gaussian mixture density fitted to them (a smooth density estimate that does not
    depend on a histogram's bin width); ``min_mass`` as for :func:`density_modes`."""
    return len(mode_cuts(values, seed, components, min_mass)) + 1


def mode_cuts(
    values: np.ndarray, seed: int = 0, components: int = DENSITY_COMPONENTS, min_mass: float = 0.0
) -> np.ndarray:
    """The values between the modes :func:`count_modes` counts (the density's lowest point
    between each two neighbours), ascending; one fewer than the modes."""
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    rng = np.random.default_rng(seed)
    if len(x) > MODE_POINTS:
        x = x[rng.choice(len(x), MODE_POINTS, replace=False)]
    if len(x) < 2 or np.ptp(x) == 0:
        return np.empty(0)
    centre, spread = x.mean(), x.std()
    x = (x - centre) / spread
    w, mu, var = _fit_1d_gmm(x, components, rng)
    grid = np.linspace(x.min(), x.max(), 1024)
    d = (w * np.exp(-0.5 * (grid[:, None] - mu) ** 2 / var) / np.sqrt(var)).sum(1)
    return centre + spread * grid[_valleys(d, density_peaks(d, min_mass=min_mass))]


def contrast_to_noise(plane: np.ndarray, objects: np.ndarray, spacing: int = 1) -> float:
    """How far ``objects`` (a mask of ``plane``) stand from the rest, in noise levels: the
    difference of the two sides' median intensities over the noise's standard deviation.

    The noise is measured without any segmentation, from the differences between points at
    least 3 px apart (``spacing``: pixels between neighbouring points of ``plane``), so that
    the denoising blur (sigma 1 px) does not correlate them: 1.4826 x their median absolute
    value / sqrt(2), which edges and slow shading barely move. Noise cut in two at its median
    gives halves 1.35 noise levels apart (1.43 as measured here, where points 3 px apart keep a
    correlation of 0.1); objects give many more. Infinite
    on a noiseless image whose sides differ."""
    plane = np.asarray(plane, dtype=np.float64)
    objects = np.asarray(objects, dtype=bool)
    if not objects.any() or objects.all():
        return 0.0
    lag = max(1, math.ceil(3 / spacing))
    diffs = [
        np.abs(np.take(plane, range(lag, n), axis=a) - np.take(plane, range(n - lag), axis=a)).ravel()
        for a, n in enumerate(plane.shape)
        if n > lag
    ]
    gap = abs(float(np.median(plane[objects]) - np.median(plane[~objects])))
    noise = 1.4826 * float(np.median(np.concatenate(diffs))) / math.sqrt(2) if diffs else 0.0
    if noise == 0:
        return math.inf if gap > 0 else 0.0
    return gap / noise


def choose_k(intensity: np.ndarray, seed: int = 0) -> int:
    """K for the mixture when none is given: the intensity modes, at least 2."""
    return choose_k_of(count_modes(intensity, seed))


def choose_k_of(modes: int) -> int:
    """K from a count of intensity modes: at least 2, at most :data:`MAX_AUTO_K`."""
    return int(np.clip(modes, 2, MAX_AUTO_K))


@dataclass(frozen=True)
class TaskChoice:
    """What :func:`choose_task` decided, with the evidence for it (reported to the user)."""

    task: str  #: "objects" or "classes"
    objects: tuple[int, ...]  #: label ids (1..K, by intensity) that are objects; empty for classes
    polarity: str  #: "bright", "dark", or "" for classes
    solidity: float  #: mean solidity of the islands of the best candidate
    n_islands: int
    background_fraction: float
    sea: bool = False  #: one piece of the objects covers more than :data:`MAX_ISLAND` of a plane
    #: for a reading refused as noise: its objects' :func:`contrast_to_noise` (else None)
    contrast: float | None = None

    def evidence(self) -> str:
        """Why no objects reading was taken, in words."""
        if self.contrast is not None:
            return (
                f"the most compact reading's {self.n_islands} islands stand only "
                f"{self.contrast:.1f} noise levels from the background"
            )
        return (
            "no reading as compact objects on a background fits; the best had "
            f"{self.n_islands} islands of solidity {self.solidity:.2f} on "
            f"{self.background_fraction:.0%} background"
        )

    def describe(self) -> str:
        if self.task == "classes":
            return f"classes ({self.evidence()})"
        ground = "dark" if self.polarity == "bright" else "bright"
        return (
            f"objects ({self.polarity} on {ground}: clusters {','.join(map(str, self.objects))}; "
            f"{self.n_islands} islands, solidity {self.solidity:.2f}, "
            f"background {self.background_fraction:.0%})"
        )


def planes(labels: np.ndarray) -> list[np.ndarray]:
    """The 2D planes the island rule looks at: the image, or three Z planes of a volume.

    Solidity needs a convex hull, which is cheap and robust in 2D; a 3D blob is still a
    convex blob in each of its planes, and nested 3D shells are not.
    """
    if labels.ndim == 2:
        return [labels]
    flat = labels.reshape(-1, *labels.shape[-2:])
    return [flat[int(f * (len(flat) - 1))] for f in (0.25, 0.5, 0.75)]


def _central(plane: np.ndarray, fraction: float) -> np.ndarray:
    """The central part of ``plane`` whose sides are ``fraction`` of the plane's."""
    sizes = [max(1, round(n * fraction)) for n in plane.shape]
    return plane[
        tuple(slice((n - k) // 2, (n - k) // 2 + k) for n, k in zip(plane.shape, sizes, strict=True))
    ]


def island_stats(foreground: np.ndarray, max_fraction: float = MAX_ISLAND) -> tuple[int, float, bool]:
    """(islands, area-weighted mean solidity, has a sea) of a 2D ``foreground`` mask.

    Touching objects are split first (distance-transform watershed, as for instances),
    so that a crowd of round objects counts as round islands. Solidity = area / convex
    hull area: near 1 for blobs, low for the branching regions of a tessellation. "Has a
    sea": one piece covers more than ``max_fraction`` of the plane, which no object does.
    """
    from .hulls import solidities
    from .refine import split_instances

    pieces_before_split = _piece_sizes(foreground)
    sea = _has_sea(pieces_before_split, foreground.size, max_fraction)
    share = min(1.0, MAX_ISLANDS / max(1, len(pieces_before_split)))  # of the plane measured
    if share < 1.0:
        foreground = _central(foreground, np.sqrt(share))
    pieces = split_instances(foreground, min_distance=None, smooth=None, min_size=4)
    ids, areas, solid = solidities(pieces)
    if not len(ids):
        return 0, 0.0, False
    solid = np.where(areas >= 3, solid, 0.0)
    return round(len(ids) / share), float((solid * areas).sum() / areas.sum()), sea


def _piece_sizes(foreground: np.ndarray) -> np.ndarray:
    """Pixel counts of the connected pieces of ``foreground``, before any split."""
    return np.bincount(ndi.label(foreground)[0].ravel())[1:]


def _has_sea(piece_sizes: np.ndarray, size: int, max_fraction: float = MAX_ISLAND) -> bool:
    """Whether one piece covers more than ``max_fraction`` of a plane of ``size`` pixels: no
    object does, a background named as the objects does."""
    return bool(len(piece_sizes) and piece_sizes.max() > max_fraction * size)


def _fails_cheaply(labels: np.ndarray, views: list[np.ndarray], objects: tuple[int, ...]) -> bool:
    """Whether the reading "``objects`` are the objects" breaks a rule that needs no islands:
    too little background, or a sea in a plane. Such a reading never fits, so
    :func:`choose_task` measures its islands (the costly part: a watershed and a convex hull
    per island, half a second on a 2048x2048 image) only when it must report the best
    reading that did not fit."""
    if 1.0 - float(np.isin(labels, objects).mean()) < MIN_BACKGROUND:
        return True
    return any(_has_sea(_piece_sizes(np.isin(p, objects)), p.size) for p in views)


def _candidates(n_clusters: int) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(polarity, object ids) for every split of the clusters, ordered by intensity, into a
    background at one end and objects at the other."""
    ids = list(range(1, n_clusters + 1))
    for j in range(1, n_clusters):
        yield "bright", tuple(ids[j:])
        yield "dark", tuple(ids[: n_clusters - j])


def _candidate(
    labels: np.ndarray, views: list[np.ndarray], polarity: str, objects: tuple[int, ...], n_clusters: int
) -> tuple[TaskChoice, bool]:
    """The reading "``objects`` are the objects" and whether it passes every rule."""
    from .refine import object_radius

    stats = [island_stats(np.isin(p, objects)) for p in views]
    choice = TaskChoice(
        "objects",
        objects,
        polarity,
        solidity=float(np.mean([s[1] for s in stats])),
        n_islands=int(np.median([s[0] for s in stats])),
        background_fraction=1.0 - float(np.isin(labels, objects).mean()),
        sea=any(s[2] for s in stats),
    )
    if (
        choice.n_islands < 1
        or (choice.n_islands < MIN_OBJECTS and choice.solidity < FEW_OBJECTS_SOLIDITY)
        or choice.background_fraction < MIN_BACKGROUND
        or choice.solidity < MIN_SOLIDITY
        or choice.sea
    ):
        return choice, False
    if n_clusters == 2:
        return choice, True
    r_objects = float(np.mean([object_radius(np.isin(p, objects)) for p in views]))
    background = [k for k in range(1, n_clusters + 1) if k not in objects]
    r_background = min(float(np.mean([object_radius(p == k) for p in views])) for k in background)
    return choice, r_objects < SIZE_RATIO * r_background


def standout_reading(
    labels: np.ndarray, n_clusters: int, plane: np.ndarray, spacing: int, min_contrast: float
) -> TaskChoice | None:
    """The first reading "these clusters at one end of the intensity order are the objects"
    of ``labels`` whose objects stand at least ``min_contrast`` noise levels out of ``plane``
    (:func:`contrast_to_noise`) and pass the objects rules with the solidity asked of a few
    objects (:data:`FEW_OBJECTS_SOLIDITY`); None when none does. The contrast is measured first: it costs
    milliseconds, the islands of a reading of noise up to a second."""
    views = planes(labels)
    for polarity, objects in _candidates(n_clusters):
        if contrast_to_noise(plane, np.isin(labels, objects), spacing) < min_contrast:
            continue
        if _fails_cheaply(labels, views, objects):
            continue
        # judged as with two clusters: the other components are the noise's speckle, not
        # regions, so the rule that objects be smaller than every background region is moot;
        # and as few objects, however many islands: compact ones
        choice, fits = _candidate(labels, views, polarity, objects, 2)
        if fits and choice.solidity >= FEW_OBJECTS_SOLIDITY:
            return choice
    return None


def choose_task(
    labels: np.ndarray, n_clusters: int, *, force_objects: bool = False, polarity: str | None = None
) -> TaskChoice:
    """Objects or classes, and which clusters are objects, from a (possibly subsampled)
    label image ``labels`` (1..K by intensity) of one frame or volume.

    With two clusters there is always an object/background reading (and the classes
    reading is the same partition), so the rule only picks the polarity. With three or
    more, the objects must also be smaller than every background region
    (:data:`SIZE_RATIO`): tissue classes form regions of comparable size.

    ``force_objects``: the caller knows these are objects; return the best reading even
    if no rule holds (the most compact islands), restricted to ``polarity`` if given.
    """
    views = planes(labels)
    best: TaskChoice | None = None
    readings = [(pol, objects) for pol, objects in _candidates(n_clusters) if not polarity or pol == polarity]
    measured: dict[int, TaskChoice] = {}
    for i, (pol, objects) in enumerate(readings):
        if _fails_cheaply(labels, views, objects):
            continue  # cannot fit; measured below only if no reading fits
        choice, fits = _candidate(labels, views, pol, objects, n_clusters)
        measured[i] = choice
        if fits and (best is None or choice.solidity > best.solidity):
            best = choice
    if best is not None:
        return best
    # no reading fits: the evidence is the most compact of them all (the first on a tie)
    evidence = TaskChoice("classes", (), "", -1.0, 0, 0.0)
    for i, (pol, objects) in enumerate(readings):
        choice = measured[i] if i in measured else _candidate(labels, views, pol, objects, n_clusters)[0]
        if choice.solidity > evidence.solidity:
            evidence = choice
    if force_objects:
        return evidence
    return TaskChoice(
        "classes", (), "", max(evidence.solidity, 0.0), evidence.n_islands, evidence.background_fraction
    )
