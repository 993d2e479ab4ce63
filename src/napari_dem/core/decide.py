"""The fit's decisions at default settings: K, objects or classes, which clusters are objects.

Why a module of its own: :class:`~.segmenter.DEMSegmenter` reads tiles and runs EM;
this module says what to fit and how to read the result, from the sampled points
alone (bounded cost on any image size). The rules themselves are the pure functions
of :mod:`.select`; here they are put in order:

1. **K** (when not given): the modes of the denoised intensity (:func:`.select.choose_k`).
2. A first mixture on the DEM latents with that K; its labels on the sampling grid of
   one frame tell **objects or classes** (:func:`.select.choose_task`). When they read as
   classes, so do the intensity mixture's labels, and clear objects there (nuclei at two
   brightness levels, whose background the latents split by its neighbourhood) are objects
   labelled on the intensity.
3. **Objects** (2D): one more cluster than intensity modes (when K was not given), so that
   dim objects get a cluster of their own instead of joining the background (DSB2018: F1
   0.82 with two, 0.87 with three), unless that makes the islands less compact (mean
   solidity lower by more than :data:`EXTRA_CLUSTER_TOLERANCE`: then the extra cluster
   cut objects or background apart; BBBC007 and dark-on-bright cases) or leaves the objects
   less than :data:`EXTRA_CLUSTER_KEEP` of their area (it took dim objects into the
   background, beside bright ones) or a piece larger than any object may be (a "sea",
   :data:`.select.MAX_ISLAND`). Not in 3D, where
   the shipped model's extra component splits the background (stardist 3D: F1 0.90 with
   two, 0.59 with three). The object clusters are chosen again on the final fit.
   **Classes**: the mixture is refitted on the denoised intensity alone: the tissue-class
   phantoms and the 3D MRI-like phantom scored far better so (mean Dice 0.91-0.97 against
   0.5-0.8 on the latents, whose local-contrast front end erases region means).
   **Textures** (2D, :mod:`.texture`): when the intensity has one mode but regions of one mean
   differ in grain, the image is classes of textures, fitted on texture features (before
   step 2; on two-class texture phantoms the reading of steps 2-3 scored a Dice of 0.35-0.57),
   unless the latents' first reading finds objects that stand out of their surround in
   brightness (dense dark cells, whose edges and insides the texture features tell apart).
4. For objects, their typical radius from the flattened intensity (:class:`_SizeOf`): it
   scales the instance watershed and, when large, the image (:mod:`.rescale`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from .errors import InputError

if TYPE_CHECKING:  # the CLI imports this module for its choices: keep torch and scipy out of --help
    import torch

    from .select import TaskChoice

TASKS = ("auto", "objects", "classes")
#: Objects get one cluster more than intensity modes unless that makes the islands less compact
#: by more than this (mean solidity).
EXTRA_CLUSTER_TOLERANCE = 0.0005
#: ... and unless its objects keep less than this share of the objects' area: the extra
#: cluster took the dim objects into the background (nuclei at two brightness levels).
EXTRA_CLUSTER_KEEP = 0.5
#: ... and unless its objects grow by more than this factor: the extra cluster took in a region
#: the objects lie in (an epithelium's stained cytoplasm around its nuclei), not dim objects
#: (where it was taken on the panel, its development seeds and the family cases: at most 1.30).
EXTRA_CLUSTER_GROWTH = 1.5
#: Components of the latent mixtures in which a field of one intensity level is searched for a
#: few objects too few to make a mode of their own (:func:`_lone_objects`), in this order.
LONE_CLUSTERS = (3, 4, 5, 6)
#: Noise levels such objects stand out at least: twice :data:`.select.MIN_CONTRAST` (one cell
#: in a 384 px field stood 13.8-21.4 out; the noise's own components at most 4.1).
LONE_MIN_CONTRAST = 7.0
#: Share of the sampling grid, smallest intensity gradient first, whose modes
#: :func:`interior_modes` counts.
INTERIOR_SHARE = 0.8
#: Least share of those points a mode of :func:`interior_modes` holds: the outline pixels that
#: pass for interior (the smallest gradients of a blurred edge) are a few stray points between
#: the two levels (0.003 % and 0.3 % on two dark-disc images read as three classes).
INTERIOR_MIN_MASS = 0.01
#: A classes reading gives way to objects found at the interior's K only when their islands
#: are this compact (mean solidity; the objects rule itself asks 0.8): clean discs read
#: 0.944-0.965, the dark pockets of the MRI-like phantom at two classes 0.86.
INTERIOR_SOLIDITY = 0.9
#: With three or more clusters, objects read on the intensity's clusters (when the latents'
#: read as classes) must be this many islands: a few large compact regions at two or three
#: levels are what tissue classes look like too (class phantoms of 128-256 px with 2-10
#: islands of solidity 0.92-0.96 on one dominant class); nuclei at two brightness levels
#: make 54-60. With two clusters the objects reading is the classes partition itself.
INTENSITY_MIN_ISLANDS = 20
#: Least background share of a reading taken as objects of a known polarity (:func:`_known_objects`).
KNOWN_MIN_BACKGROUND = 0.5
#: What the mixture is fitted on: the DEM latents, the denoised intensity alone, or the texture
#: features of :mod:`.texture`.
FEATURES = ("latent", "intensity", "texture")


@dataclass(frozen=True)
class Decision:
    """What the fit decided; stored on the segmenter and reported to the user."""

    n_clusters: int
    task: str  #: "objects" or "classes"
    objects: tuple[int, ...]  #: cluster ids (1..K by intensity) that are objects; () for classes
    features: str  #: one of :data:`FEATURES`
    k_chosen: bool  #: K was chosen from the data (not given)
    reason: str  #: one line: why this task and these objects
    object_radius: float = 0.0  #: typical object radius (px in the plane) for objects, else 0
    zoom: float = 1.0  #: the image plane was shrunk by this factor for the fit (large objects)
    object_radius_z: float = 0.0  #: the objects' typical radius along Z (slices) in 3D mode, else 0
    zoom_z: float = 1.0  #: Z was shrunk by this factor for the fit (objects many slices deep)
    solidity: float = 0.0  #: the objects' islands' mean solidity on the sampling grid (0: not measured)

    def summary(self) -> str:
        if self.task == "objects" and not self.objects:  # an empty field: K says nothing
            return self.reason
        k = f"K={self.n_clusters} ({'chosen from the data' if self.k_chosen else 'given'})"
        size = f"; objects ~{2 * self.object_radius:.0f} px across" if self.object_radius else ""
        if size and self.object_radius_z:
            size += f" and ~{2 * self.object_radius_z:.0f} slices deep"
        if self.zoom != 1.0 or self.zoom_z != 1.0:
            size += f", segmented at {self.zoom:.2f}x"
            if self.zoom_z != 1.0:
                size += f" in Y, X and {self.zoom_z:.2f}x in Z"
        return f"{k}; {self.reason}{size}"


def check_task(task: str) -> str:
    task = (task or "auto").lower()
    if task not in TASKS:
        raise InputError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    return task


def parse_objects(spec: str | int | Sequence[int] | None, background: str | int | None = None):
    """The ``objects`` override as given (``brightest``, ``darkest``, ids) or from its complement
    ``background``; None when neither is given. Both at once is an error."""
    if spec is not None and background is not None:
        raise InputError("give either objects or background, not both (they say the same thing)")
    if background is not None:
        return ("not", _parse_ids(background, "background"))
    if spec is None:
        return None
    return ("is", _parse_ids(spec, "objects"))


def _parse_ids(spec: str | int | Sequence[int], what: str):
    if isinstance(spec, str):
        s = spec.strip().lower()
        if s in ("brightest", "darkest"):
            return s
        try:
            return tuple(int(v) for v in s.split(",") if v.strip())
        except ValueError:
            raise InputError(
                f"{what} must be brightest, darkest or cluster ids like 2,3; got {spec!r}"
            ) from None
    if isinstance(spec, int | np.integer):
        return (int(spec),)
    return tuple(int(v) for v in spec)


def resolve_objects(parsed, n_clusters: int) -> tuple[int, ...]:
    """Cluster ids that are objects, from :func:`parse_objects`' result, checked against K."""
    how, ids = parsed
    if ids == "brightest":
        ids = (n_clusters,)
    elif ids == "darkest":
        ids = (1,)
    bad = [i for i in ids if not 1 <= i <= n_clusters]
    if bad or not ids:
        raise InputError(f"cluster ids must lie in 1..{n_clusters}, got {','.join(map(str, ids)) or 'none'}")
    chosen = set(ids) if how == "is" else set(range(1, n_clusters + 1)) - set(ids)
    if not chosen or len(chosen) == n_clusters:
        raise InputError("objects and background must each keep at least one cluster")
    return tuple(sorted(chosen))


#: fit(K) -> the sampled points' labels 1..K (by intensity) under a mixture of the latents
Fitter = Callable[[int], np.ndarray]


def needs_latents(task: str, objects, redraw: bool) -> bool:
    """Whether :func:`decide` may choose the latents, known before any data: always, except
    for the task given as classes with no objects named and no strokes that re-draw the
    classes (``redraw``: strokes without labels to correct), which are fitted and labelled on
    the intensity. A caller that gets False need not run the network at all."""
    return not (check_task(task) == "classes" and objects is None and not redraw)


def decide(
    intensity: torch.Tensor,
    fit: Fitter,
    grid: Callable[[np.ndarray], np.ndarray],
    *,
    n_clusters: int | None,
    task: str,
    objects,
    guided: bool,
    seed: int,
    refining: bool = False,
    extra_cluster: bool = True,
    spacing: int = 1,
    max_k: int = 255,
    textures: Callable[[int], int] | None = None,
    plain: Callable[[int], np.ndarray] | None = None,
    count: Callable[[], int] | None = None,
    polarity: str | None = None,
) -> Decision:
    """Run the rules of this module; ``fit`` fits a latent mixture and returns the points' labels,
    ``plain`` the same on the denoised intensity alone (None: no such reading), ``grid`` turns
    per-point values into the image of one frame on the sampling grid, whose points are
    ``spacing`` pixels apart; a chosen K never exceeds ``max_k`` (the image's
    distinct values). ``refining``: the strokes (``guided``) correct given labels.
    ``textures(intensity modes)``: how many texture classes the image holds by the rule of
    :mod:`.texture` (1: not read as textures); None where the fit cannot read textures.
    ``count()``: the intensity's modes (:func:`.select.count_modes` of ``intensity`` when None;
    a caller that also needs their cuts counts them once). ``polarity`` (``"bright"`` or
    ``"dark"``): the objects' polarity when it is known already, in a refit at the model's
    scale of objects read at full size (:meth:`.segmenter.DEMSegmenter._rescale_if_large`):
    only readings of that polarity are taken, and a compact one is taken even where the rules
    for an image seen afresh would read classes (:func:`_known_objects`)."""
    from .select import MAX_AUTO_K, MIN_CONTRAST, choose_k_of, choose_task, contrast_to_noise, count_modes

    task = check_task(task)
    k_chosen = n_clusters is None and not guided
    count = count or (lambda: count_modes(intensity.cpu().numpy(), seed))
    modes = count() if k_chosen or textures is not None else 0
    k = min(choose_k_of(modes), max(2, max_k)) if k_chosen else int(n_clusters)
    if guided:  # painted classes are classes: their ids are the user's
        # Strokes that correct a classes result work on the features that made it (intensity);
        # on the latents its classes would be re-drawn (DSB2018, K=3: 95 % of the dim class kept
        # on intensity, 62 % on the latents).
        features = "intensity" if refining and task == "classes" else "latent"
        return Decision(k, "classes", (), features, False, "classes (painted by the user)")
    size = _SizeOf(intensity, grid, spacing)
    if objects is not None:
        ids = resolve_objects(objects, k)
        radius, radius_z = size(k in ids)
        return Decision(
            k, "objects", ids, "latent", k_chosen, "objects (as given)", radius, object_radius_z=radius_z
        )

    def reading(labels: np.ndarray, n: int) -> TaskChoice:
        """:func:`.select.choose_task` on ``labels``; with the task auto, objects that stand
        out less than :data:`.select.MIN_CONTRAST` noise levels are noise: no objects."""
        choice = choose_task(labels, n, polarity=polarity)
        if task == "auto" and choice.task == "objects":
            contrast = contrast_to_noise(size.image, np.isin(labels, choice.objects), spacing)
            if contrast < MIN_CONTRAST:
                return replace(choice, task="classes", objects=(), polarity="", contrast=contrast)
        return choice

    first = None
    n_textures = textures(modes) if textures is not None and objects is None and task != "objects" else 1
    if n_textures >= 2 and task == "auto":
        # Objects that stand out of their surround in brightness are objects, whatever their
        # grain: dense dark cells (60 % of a bright field) made two "textures", their edges
        # and their insides.
        first = reading(grid(fit(k)), k)
    if n_textures >= 2 and (first is None or first.task != "objects"):
        k = min(n_textures, max(2, max_k)) if k_chosen else k
        reason = (
            f"classes by texture ({n_textures} textures of one mean intensity"
            f"{'' if task == 'auto' else ', classes as given'})"
        )
        return Decision(k, "classes", (), "texture", k_chosen, reason)
    if task == "classes":
        return Decision(k, "classes", (), "intensity", k_chosen, "classes (as given)")

    first = first or reading(grid(fit(k)), k)
    if task == "auto" and first.task == "classes" and k_chosen and k > 2:
        # Blurred edges between two levels add modes of their own on a clean image; if the
        # modes away from the edges are fewer and read clearly as objects, it is objects.
        k_inner = min(choose_k_of(interior_modes(size.image, seed)), k)  # the same grid image
        inner = reading(grid(fit(k_inner)), k_inner) if k_inner < k else first
        if inner.task == "objects" and inner.solidity >= INTERIOR_SOLIDITY:
            k, first = k_inner, inner
    if task == "auto" and first.task == "classes" and plain is not None:
        # The latents see each pixel in its context, and one level of objects beside another
        # (nuclei at two brightness levels) can put the background near the bright ones in a
        # cluster of its own; the intensity's clusters are the levels themselves.
        on_intensity = reading(grid(plain(k)), k)
        if (
            on_intensity.task == "objects"
            and on_intensity.solidity >= INTERIOR_SOLIDITY
            and (k == 2 or on_intensity.n_islands >= INTENSITY_MIN_ISLANDS)
        ):
            radius, radius_z = size(on_intensity.polarity == "bright")
            reason = f"{on_intensity.describe()}, on the intensity"
            return Decision(
                k, "objects", on_intensity.objects, "intensity", k_chosen, reason, radius,
                object_radius_z=radius_z, solidity=on_intensity.solidity,
            )  # fmt: skip
    if task == "auto" and first.task == "classes" and polarity is not None:
        first = _known_objects(grid(fit(k)), k, polarity) or first
    if task == "auto" and first.task == "classes" and k_chosen and modes == 1:
        lone = _lone_objects(fit, grid, size, spacing, max_k)
        if lone is not None:
            return lone
        # One intensity level, no textures and no compact objects on either reading: an empty
        # field, or noise. Two classes of it would paint half the field by chance.
        reason = f"no objects (one intensity level and no texture; {first.evidence()})"
        return Decision(k, "objects", (), "intensity", k_chosen, reason)
    if task == "auto" and first.task == "classes":
        return Decision(k, "classes", (), "intensity", k_chosen, first.describe())
    # When the first reading already is objects, it is the best one of its polarity.
    final = first if first.task == "objects" else choose_task(grid(fit(k)), k, force_objects=True)
    if k_chosen and extra_cluster and k < min(MAX_AUTO_K, max_k):
        more = choose_task(grid(fit(k + 1)), k + 1, force_objects=True, polarity=final.polarity)
        area, more_area = 1 - final.background_fraction, 1 - more.background_fraction
        kept = EXTRA_CLUSTER_KEEP * area <= more_area <= EXTRA_CLUSTER_GROWTH * area
        if kept and not more.sea and more.solidity >= final.solidity - EXTRA_CLUSTER_TOLERANCE:
            k, final = k + 1, more
    reason = _reason(final, task)
    radius, radius_z = size(final.polarity == "bright")
    return Decision(
        k, "objects", final.objects, "latent", k_chosen, reason, radius, object_radius_z=radius_z,
        solidity=final.solidity,
    )  # fmt: skip


def _known_objects(labels: np.ndarray, n_clusters: int, polarity: str) -> TaskChoice | None:
    """The most compact reading of ``labels`` with objects of ``polarity``, when objects of
    that polarity are known to be there (read at full size), or None.

    Why: shrunk to the model's scale, a field of a few large objects can fail the rules for
    an image seen afresh that tell tissue classes from objects: with three clusters the
    objects must be smaller than every background region (:data:`.select.SIZE_RATIO`), and
    between five to fifteen objects 40-80 px across, shrunk to 20 px, the background's
    regions are no larger (``benchmarks/bench_sizes.py``: 3 of 24 fields of such objects
    were read as classes, F1 0.00-0.80). Taken when its islands are as compact as clean
    discs (:data:`INTERIOR_SOLIDITY`), at least :data:`.select.MIN_OBJECTS`, no piece is a
    sea and the objects are the minority: regions of a two-class phantom that passed for
    objects at full size have a sea at the model's scale, or cover half the field."""
    from .select import MIN_OBJECTS, choose_task

    choice = choose_task(labels, n_clusters, force_objects=True, polarity=polarity)
    if (
        choice.solidity >= INTERIOR_SOLIDITY
        and choice.n_islands >= MIN_OBJECTS
        and not choice.sea
        and choice.background_fraction >= KNOWN_MIN_BACKGROUND
    ):
        return replace(choice, task="objects")
    return None


def _lone_objects(
    fit: Fitter, grid: Callable[[np.ndarray], np.ndarray], size: _SizeOf, spacing: int, max_k: int
) -> Decision | None:
    """Objects too few to make an intensity mode of their own (one or a few cells in a wide
    field), or None. The latent mixture with two clusters cuts the background's noise in
    two; with :data:`LONE_CLUSTERS` it gives the noise several components and the objects
    one of their own at an end of the intensity order. Read as objects when that end's
    islands are compact (:data:`.select.FEW_OBJECTS_SOLIDITY`), leave a background
    (:data:`.select.MIN_BACKGROUND`, no piece larger than an object may be) and stand at
    least :data:`LONE_MIN_CONTRAST` noise levels out; the noise's own components stand
    1.8-4.1 levels out."""
    from .select import standout_reading

    for k in LONE_CLUSTERS:
        if k > max_k:
            break
        choice = standout_reading(grid(fit(k)), k, size.image, spacing, LONE_MIN_CONTRAST)
        if choice is not None:
            radius, radius_z = size(choice.polarity == "bright")
            reason = f"{choice.describe()}, too few for an intensity mode of their own"
            return Decision(
                k, "objects", choice.objects, "latent", True, reason, radius, object_radius_z=radius_z,
                solidity=choice.solidity,
            )  # fmt: skip
    return None


def interior_modes(plane: np.ndarray, seed: int) -> int:
    """Intensity modes of ``plane`` (one frame on the sampling grid) away from its edges: of
    the :data:`INTERIOR_SHARE` of its points with the smallest intensity gradient.

    Where objects stand far above the noise, the pixels of their blurred outlines spread
    thinly over every value between object and background, and the density estimate finds
    small modes there: 19 bright discs on a dark field at 3-5 % noise gave 3 or 4 modes, and
    11 of 16 such images were read as classes. Their interior has two modes. Thin classes
    (the CSF of the MRI-like phantom) are mostly edge too, so this count only ever lets a
    clear objects reading through (:data:`INTERIOR_SOLIDITY`), it never sets K for classes.
    """
    from .select import count_modes

    plane = np.asarray(plane, dtype=np.float64)
    # along the axes the grid has at least two points on (a thin stack may have one along Z)
    axes = [a for a, n in enumerate(plane.shape) if n >= 2]
    if axes:
        parts = np.gradient(plane, axis=axes)
        parts = [parts] if len(axes) == 1 else parts
        gradient = np.sqrt(sum(g**2 for g in parts))
        plane = plane[gradient <= np.quantile(gradient, INTERIOR_SHARE)]
    return count_modes(plane, seed, min_mass=INTERIOR_MIN_MASS)


class _SizeOf:
    """The objects' typical radius (px) from the denoised intensity split in two (Otsu), on the
    sampling grid. Not from the mixture's labels: on objects much larger than the model's
    context those find the rims, and the rims' radius is that of a ring. The plane is
    flattened first (minus a blur over a quarter of its side), so that uneven illumination
    does not pass for one big object. In a volume, also their radius along Z (slices)."""

    def __init__(
        self, intensity: torch.Tensor, grid: Callable[[np.ndarray], np.ndarray], spacing: int
    ) -> None:
        self.image = grid(intensity.cpu().numpy())
        self.spacing = spacing

    @cached_property
    def _flat(self) -> np.ndarray:
        """Every plane flattened, stacked (one plane in 2D): the same for either polarity, and
        the blur over a quarter of the side is the slow part (0.03 s per plane on a 410 px
        sampling grid)."""
        return np.stack([_flattened(p) for p in self.image.reshape(-1, *self.image.shape[-2:])])

    @property
    def _plane(self) -> np.ndarray:
        """The middle plane (:func:`.select.planes`' middle view), flattened."""
        return self._flat[(len(self._flat) - 1) // 2]

    def __call__(self, bright: bool) -> tuple[float, float]:
        """(radius in the plane, radius along Z or 0 when the image is not a volume)."""
        from skimage.filters import threshold_otsu

        plane = self._plane
        if np.ptp(plane) == 0:
            return 0.0, 0.0
        t = threshold_otsu(plane)
        objects = plane > t if bright else plane < t
        radius = self.spacing * solid(objects, SOLID_MIN_RADIUS / self.spacing)[1]
        if self.image.ndim != 3 or radius == 0:
            return radius, 0.0
        # Along Z: the same threshold on every flattened plane, and the objects' depth
        # relative to their width (voxel-weighted mean run lengths; exact for axis-aligned
        # ellipsoids, whatever their size), so that both radii come from the same plane's scale.
        stack = self._flat > t if bright else self._flat < t
        width = 0.5 * (mean_run(stack, 1) + mean_run(stack, 2))
        return radius, (radius * mean_run(stack, 0) / width if width else 0.0)


#: Pieces of a threshold under this radius (px) are measured as they are (:func:`solid`).
SOLID_MIN_RADIUS = 6.0


def solid(mask: np.ndarray, min_radius: float = SOLID_MIN_RADIUS) -> tuple[np.ndarray, float]:
    """(``mask`` (2D) with its holes smaller than a typical object of it filled, its
    :func:`.refine.object_radius`): filled when it covers less than half the plane and its
    pieces measure at least ``min_radius`` (px of the mask), so that an object is measured
    whole, not around its holes. The radius comes with the mask because the rule measures it
    anyway: a mask left as it is is not measured twice (a distance transform, 17 ms on a 410
    px sampling grid).

    Why: a threshold cuts a nucleus's dark nucleoli (and some of its grain) out as holes, and
    each hole lowers the mean distance to the background that the radius is read from. DAPI-like
    nuclei of radius 15-25 px with nucleoli measured 11.5-12.7 px, about the bar above which
    objects are shrunk to the model's scale, so they were segmented at full size or barely
    shrunk, and cut at their nucleoli (F1 0.38-0.88 on five fields; measured whole, 15-17 px,
    and shrunk to the target: 0.86-0.95). Where the mask is the majority (a crowd, or the
    background named as the objects) its pockets may be the gaps between objects, which stay
    open. Small pieces are left as they are: their holes cannot lift them across that bar
    (twice :data:`SOLID_MIN_RADIUS`), and the speckle of a threshold of noise (a field with
    one small cell in it) merged into blobs three times larger (4.2 -> 13.3 px) and had the
    field shrunk.
    """
    from .refine import fill_small_holes, object_radius

    radius = object_radius(mask)
    if radius == 0 or radius < min_radius or mask.mean() >= 0.5:
        return mask, radius
    filled = fill_small_holes(mask, np.pi * radius**2)
    return filled, object_radius(filled)


def _flattened(plane: np.ndarray) -> np.ndarray:
    """``plane`` minus a blur over a quarter of its side: uneven illumination taken out."""
    plane = plane.astype(np.float64)
    return plane - wide_gaussian(plane, max(plane.shape) / 4)


def wide_gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(image, sigma, mode="nearest")`` by the FFT.

    Why: a blur over a quarter of the side has a kernel as long as the plane (821 taps on a
    410 px sampling grid), which SciPy's direct filter took 0.1-0.3 s over; the encoder's FFT
    filter (edge-padded, in float64 here) equals it to float rounding (tests/test_decide.py).
    """
    import torch

    from .networks import fft_filter

    radius = int(4.0 * sigma + 0.5)  # SciPy's reach (truncate 4)
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    y = torch.from_numpy(np.asarray(image, dtype=np.float64))[None, None]
    return fft_filter(y, [(1.0, torch.from_numpy(kernel))])[0, 0].numpy()


def mean_run(mask: np.ndarray, axis: int) -> float:
    """Mean length of the runs of ``mask`` along ``axis``, weighted by their length (the run
    a random foreground pixel lies on); 0 for an empty mask."""
    lines = np.moveaxis(np.asarray(mask, dtype=np.int8), axis, -1).reshape(-1, mask.shape[axis])
    steps = np.diff(np.pad(lines, ((0, 0), (1, 1))), axis=1)
    # starts and ends come in the same row-major order, so they pair up run by run
    lengths = (np.nonzero(steps == -1)[1] - np.nonzero(steps == 1)[1]).astype(np.float64)
    return float((lengths**2).sum() / lengths.sum()) if len(lengths) else 0.0


def _reason(choice: TaskChoice, task: str) -> str:
    return choice.describe() if task == "auto" else f"{choice.describe()} (objects as given)"
