"""Watershed pieces of one elongated object joined again: the last step of the instance split.

Why: the split seeds one watershed basin per peak of the (smoothed) distance map, and a round
object has one peak. A rod (a bacterium 5 px wide and 14-24 px long) has a ridge instead, as
wide as the rod all along, and the outline's pixel noise leaves several peaks on it a few
pixels apart: from the *true* masks of such rods the split gave 73 pieces for 50 rods (F1
0.73). Two touching round objects differ from two pieces of a rod in two ways at once: the
distance map dips between them (a neck), and their union is no longer than two touching
discs. So two adjacent pieces are joined when (1) the highest point of their shared boundary
on the distance map lies less than :data:`RIDGE_DIP` of the lower of their two peaks below
that peak, (2) their union is at least :data:`ELONGATION` times as long as it is wide (two
equal touching discs: 2.24), and (3) it is about as convex as the less convex of the two (a
solidity loss under :data:`SOLIDITY_LOSS`: a small object leaning on a big one makes a dent).
Measured in docs/benchmarks.md: rods F1 0.778 / 0.724 -> 0.863 / 0.904, DSB2018 0.905 ->
0.917, no other case of the families, the panel or its development seeds lower by more than
one object.

Before that, a piece smaller than the smallest object kept and only one or two pixels wide (a
*sliver*, left between two seeds on a rod's ridge) joins the neighbour it shares the highest
boundary with (:func:`join_slivers`): it is not an object, and it keeps its two neighbours,
each too short alone, from passing the elongation test. With it, and the solidity loss
tolerated raised from 0.01 to 0.025 (the outline of a rod 5 px wide is ragged enough to lose
0.02 where two pieces meet; at 0.03 a dense field lost one pair of touching blobs), the rods'
F1 0.863 / 0.904 -> 0.948 / 0.950.

2D only: in 3D a first version joined touching stardist nuclei (F1 0.878 -> 0.845), and this
rule, with the length taken from the two longest axes, the panel's large anisotropic nuclei
(0.914 -> 0.788), whose slices are elongated by the Z step.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: Largest dip of the distance map between two pieces' peaks along their shared boundary, as a
#: share of the lower peak, that still counts as one ridge: on a rod 5 px wide the pixel grid
#: alone makes the ridge dip by up to 0.75 px (0.3 of its 2.5 px half-width).
RIDGE_DIP = 0.3
#: A piece under the smallest object kept is a sliver when its own inscribed half-width is at
#: most this share of its peak on the distance map (the object's half-width there): one or two
#: pixels wide across a rod 5 px wide (0.38 on the families' rods); the small compact pieces of
#: dense fields and big objects' fragments measure 1.1-3.1 (smoothing lowers the peak).
SLIVER_WIDTH = 0.6
#: Least length / width (major / minor axis of the union's ellipse of inertia) of a joined pair.
ELONGATION = 2.5
#: Most the union's solidity may fall below the less solid piece's.
SOLIDITY_LOSS = 0.025


def join_ridges(instances: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """``instances`` (2D, ids 1..N, 0 = background) with the adjacent pieces that lie on one
    ridge of ``dist`` (the distance map the watershed ran on) given one id, renumbered 1..M in
    the order of each group's lowest id. Anything else (3D, fewer than two pieces): unchanged."""
    n = int(instances.max())
    if instances.ndim != 2 or n < 2:
        return instances
    pairs = _ridge_pairs(instances, dist, n)
    if not len(pairs):
        return instances
    from .hulls import solidities

    boxes = ndi.find_objects(instances)
    parent = np.arange(n + 1)
    joined = False
    for a, b in pairs:
        box = tuple(
            slice(min(p.start, q.start), max(p.stop, q.stop))
            for p, q in zip(boxes[a - 1], boxes[b - 1], strict=True)
        )
        crop = instances[box]
        piece_a, piece_b = crop == a, crop == b
        union = piece_a | piece_b
        if _elongation(union) < ELONGATION:
            continue
        less_solid = solidities(piece_a.astype(np.uint8) + 2 * piece_b.astype(np.uint8))[2].min()
        if solidities(union.astype(np.uint8))[2][0] < less_solid - SOLIDITY_LOSS:
            continue
        _join(parent, a, b)
        joined = True
    return _renumbered(instances, parent) if joined else instances


def join_slivers(instances: np.ndarray, dist: np.ndarray, floor: int) -> np.ndarray:
    """``instances`` with every sliver, a piece under ``floor`` pixels that is thin (its own
    inscribed half-width at most :data:`SLIVER_WIDTH` of its peak on ``dist``) and touches
    another piece, given to the neighbour it shares the highest boundary point of ``dist``
    with, smallest first, renumbered 1..M as :func:`join_ridges` does.

    Why: where the distance map has a ridge (a rod), seeds ``min_distance`` apart can leave a
    basin one or two pixels wide between two others: under the smallest object kept (``floor``,
    :func:`.refine.min_object_size`), so not an object, and it keeps its two neighbours from
    being joined as one rod (each is too short alone). A small *compact* piece is left alone:
    in dense fields those are small objects of their own, and so are pieces cut by the image's
    border, however thin. 2D only, as :func:`join_ridges`.
    """
    n = int(instances.max())
    if instances.ndim != 2 or n < 2 or floor <= 1:
        return instances
    sizes = np.bincount(instances.ravel(), minlength=n + 1)
    small = np.flatnonzero(sizes[1:] < floor) + 1
    if not len(small):
        return instances
    peaks = _peaks(instances, dist, n)
    boxes = ndi.find_objects(instances)
    slivers = [
        p
        for p in small
        if not _at_border(boxes[p - 1], instances.shape)
        and _half_width(instances, boxes[p - 1], p) <= SLIVER_WIDTH * peaks[p]
    ]
    if not slivers:
        return instances
    low, high, saddle = _boundaries(instances, dist, n)
    parent = np.arange(n + 1)
    joined = False
    for piece in sorted(slivers, key=lambda p: sizes[p]):
        touching = (low == piece) | (high == piece)
        if not touching.any():
            continue
        best = np.flatnonzero(touching)[np.argmax(saddle[touching])]
        other = high[best] if low[best] == piece else low[best]
        _join(parent, piece, other)
        joined = True
    return _renumbered(instances, parent) if joined else instances


def _at_border(box: tuple[slice, ...], shape: tuple[int, ...]) -> bool:
    """Whether the bounding box ``box`` touches the edge of an array of ``shape``."""
    return any(b.start == 0 or b.stop == n for b, n in zip(box, shape, strict=True))


def _half_width(instances: np.ndarray, box: tuple[slice, ...], piece: int) -> float:
    """The inscribed half-width of ``piece`` on its own (its distance transform's maximum)."""
    padded = np.pad(instances[box] == piece, 1)
    return float(ndi.distance_transform_edt(padded).max())


def _renumbered(instances: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """``instances`` with each piece given its group's id (``parent``: a union-find forest over
    0..N), the groups numbered 1..M in the order of their lowest id."""
    roots = np.array([_root(parent, i) for i in range(len(parent))])
    kept = np.unique(roots)  # 0 and the surviving ids, in order
    renumber = np.zeros(len(parent), dtype=np.int32)
    renumber[kept] = np.arange(len(kept))
    return renumber[roots][instances].astype(np.int32)


def join_shallow(instances: np.ndarray, height: np.ndarray, dip: float) -> np.ndarray:
    """``instances`` (ids 1..N, 0 = background, any dimension) with every two adjacent pieces
    whose shared boundary's highest point on ``height`` (the landscape the watershed ran on)
    lies less than ``dip`` of the lower of their two peaks below that peak given one id,
    renumbered 1..M as :func:`join_ridges` does.

    Why: a watershed seeds a basin at every peak at least ``min_distance`` apart, however
    shallow the valley between two of them; where the landscape barely dips, the two basins
    are one object (used on the learned map of :func:`.refine.split_instances`).
    """
    n = int(instances.max())
    if n < 2:
        return instances
    pairs = _ridge_pairs(instances, height, n, dip)
    if not len(pairs):
        return instances
    parent = np.arange(n + 1)
    for a, b in pairs:
        _join(parent, a, b)
    return _renumbered(instances, parent)


def _ridge_pairs(instances: np.ndarray, dist: np.ndarray, n: int, dip: float = RIDGE_DIP) -> np.ndarray:
    """``(m, 2)`` adjacent pieces (a < b) whose shared boundary's highest point on ``dist`` lies
    less than ``dip`` of the lower of their peaks below it, highest boundary first."""
    peaks = _peaks(instances, dist, n)
    low, high, saddle = _boundaries(instances, dist, n)
    lower = np.minimum(peaks[low], peaks[high])
    on_ridge = lower - saddle < dip * lower
    order = np.argsort(-saddle[on_ridge], kind="stable")
    return np.stack([low[on_ridge][order], high[on_ridge][order]], axis=1)


def _peaks(instances: np.ndarray, dist: np.ndarray, n: int) -> np.ndarray:
    """``(n + 1,)``: each piece's highest value of ``dist`` (0 for the background)."""
    peaks = np.zeros(n + 1)
    inside = instances > 0
    np.maximum.at(peaks, instances[inside], dist[inside])  # (ndimage's maximum sorts the labels)
    return peaks


def _boundaries(instances: np.ndarray, dist: np.ndarray, n: int):
    """``(low, high, saddle)``: each pair of adjacent pieces (ids ``low < high``, face neighbours)
    and the highest point of ``dist`` on their shared boundary (the lower of two facing pixels)."""
    lows, highs, saddles = [], [], []
    for axis in range(instances.ndim):
        ids, d = np.moveaxis(instances, axis, 0), np.moveaxis(dist, axis, 0)
        one, two = ids[:-1], ids[1:]
        touch = (one != two) & (one > 0) & (two > 0)
        lows.append(np.minimum(one[touch], two[touch]))
        highs.append(np.maximum(one[touch], two[touch]))
        saddles.append(np.minimum(d[:-1][touch], d[1:][touch]))
    low, high, saddle = (np.concatenate(v) for v in (lows, highs, saddles))
    keys, which = np.unique(low.astype(np.int64) * (n + 1) + high, return_inverse=True)
    best = np.full(len(keys), -np.inf)
    np.maximum.at(best, which, saddle)  # the highest boundary point of each pair
    return keys // (n + 1), keys % (n + 1), best


def _elongation(mask: np.ndarray) -> float:
    """Major / minor axis of ``mask``'s ellipse of inertia (scikit-image's ``axis_major_length /
    axis_minor_length``, from the pixels' covariance without a region object: the pairs are
    tested by the dozen); 0 (never joined) for a line of pixels, as for one pixel."""
    coords = np.nonzero(mask)
    if len(coords[0]) < 2:
        return 0.0
    low, high = np.linalg.eigvalsh(np.cov(np.stack(coords).astype(np.float64)))
    return float(np.sqrt(high / low)) if low > 1e-12 else 0.0


def _join(parent: np.ndarray, a: int, b: int) -> None:
    """Put pieces ``a`` and ``b`` in one group of the union-find forest ``parent`` (the lower
    root id becomes the group's)."""
    ra, rb = _root(parent, a), _root(parent, b)
    parent[max(ra, rb)] = min(ra, rb)


def _root(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return int(i)
