"""Solidity of every labelled piece of a 2D label image, as scikit-image measures it, at once.

Why not ``regionprops(...).solidity``: the objects-or-classes rule measures hundreds of
islands per reading (:func:`.select.island_stats`), and scikit-image builds a region object,
a Qhull hull and a rasterised hull image per piece: 0.3 s of a default run on a 2048x2048
image, against 0.02 s here. The convex hull scikit-image rasterises is that of the midpoints
of the pixels' edges, and the pixels it counts are those whose centres lie inside it or on
it. Here every piece's hull is found at once, with array operations over all pieces
together: its left boundary is the lower convex envelope of each row's leftmost edge
midpoints (as a function of the row), its right boundary the upper envelope of the rightmost
ones, and the count is, row by row, the integers between the two. The values equal
scikit-image's to the bit (tests/test_hulls.py), so every rule that reads them decides as
before.
"""

from __future__ import annotations

import numpy as np

#: Slack when a boundary lands exactly on a pixel centre (such a pixel counts). The boundary
#: is a ratio of half-integers over a span of at most the image's height, so a value that is
#: not an integer is at least 1 / (2 * height) away from one: far above this.
_EPS = 1e-9


def solidities(pieces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, areas, solidities) of the pieces present in the 2D label image ``pieces``.

    Solidity = area / the number of pixels whose centres lie in the convex hull of the
    piece's pixels taken as unit squares (edges included), in (0, 1].
    """
    if pieces.ndim != 2:
        raise ValueError(f"solidities needs a 2D label image, got {pieces.ndim}D")
    # runs of one label along the rows (far fewer than pixels: nothing per pixel is sorted)
    changes = np.ones(pieces.shape, dtype=bool)
    changes[:, 1:] = pieces[:, 1:] != pieces[:, :-1]
    run_row, run_start = np.nonzero(changes & (pieces != 0))
    changes[:, :-1] = pieces[:, :-1] != pieces[:, 1:]
    changes[:, -1] = True
    run_end = np.nonzero(changes & (pieces != 0))[1]  # the same runs, in the same order
    if not len(run_row):
        empty = np.empty(0)
        return empty.astype(np.int64), empty, empty
    run_label = pieces[run_row, run_start]
    ids, index = np.unique(run_label, return_inverse=True)
    areas = np.bincount(pieces.ravel())[ids].astype(np.float64)
    height = pieces.shape[0]
    # each (piece, row): its leftmost and rightmost column (runs come in row, then column order)
    key = index.astype(np.int64) * height + run_row
    order = np.argsort(key, kind="stable")
    key = key[order]
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    last = np.r_[first[1:], len(key)] - 1
    piece, row = np.divmod(key[first], height)
    left_col, right_col = run_start[order][first], run_end[order][last]
    # every row from each piece's top to its bottom (a piece with a gap has its hull there too)
    starts = np.flatnonzero(np.r_[True, piece[1:] != piece[:-1]])
    top, bottom = row[starts], row[np.r_[starts[1:], len(row)] - 1]
    n_rows = bottom - top + 1
    q_piece = np.repeat(piece[starts], n_rows)
    q_row = np.arange(n_rows.sum()) - np.repeat(np.cumsum(n_rows) - n_rows, n_rows) + np.repeat(top, n_rows)
    left = _boundary(piece, row, left_col, q_piece, q_row, -1, height)
    right = _boundary(piece, row, right_col, q_piece, q_row, 1, height)
    counts = np.floor(right + _EPS) - np.ceil(left - _EPS) + 1
    hull = np.bincount(q_piece, weights=np.maximum(counts, 0), minlength=len(ids))
    return ids.astype(np.int64), areas, areas / np.maximum(hull, areas)


def _boundary(
    piece: np.ndarray,
    row: np.ndarray,
    col: np.ndarray,
    q_piece: np.ndarray,
    q_row: np.ndarray,
    side: int,
    height: int,
) -> np.ndarray:
    """The column of one side of each piece's hull at the rows asked (``q_piece``, ``q_row``,
    sorted); ``piece``, ``row`` (sorted by piece, then row) and ``col``, the row's outermost
    pixel on that side: ``side`` -1 for the left, +1 for the right.

    The hull's points on a side are the outer edge midpoints: the outer edge of the outermost
    pixel at the row's height, and its top and bottom edges half a row up and down. The right
    side is mirrored into a left one, whose boundary is the lower convex envelope of x over y
    (y counted in half rows)."""
    x = -side * col.astype(np.float64)
    y2 = 2 * row.astype(np.int64)
    # three points per (piece, row): (y - 1/2, x), (y, x - 1/2), (y + 1/2, x)
    py = np.stack([y2 - 1, y2, y2 + 1], 1).ravel()
    px = np.stack([x, x - 0.5, x], 1).ravel()
    span = 2 * height + 2
    key = np.repeat(piece.astype(np.int64), 3) * span + (py + 1)
    # one point per (piece, height): the outermost (two rows share each half-row line)
    order = np.lexsort((px, key))
    key, px = key[order], px[order]
    keep = np.r_[True, key[1:] != key[:-1]]
    vx, vkey = _lower_envelope(key[keep], px[keep], key[keep] // span)
    # the envelope at each row asked: on the segment between the vertices around it
    qkey = q_piece.astype(np.int64) * span + (2 * q_row.astype(np.int64) + 1)
    j = np.searchsorted(vkey, qkey)  # the first vertex at or below the row (same piece)
    i = j - 1
    exact = vkey[j] == qkey
    y0, y1 = vkey[i].astype(np.float64), vkey[j].astype(np.float64)
    along = np.where(exact, 0.0, (qkey - y0) / np.where(exact, 1.0, y1 - y0))
    at = np.where(exact, vx[j], vx[i] + (vx[j] - vx[i]) * along)
    return -side * at


def _lower_envelope(key: np.ndarray, x: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, key) of the vertices of the lower convex envelope of the points (key, x) of each
    group (sorted by key, which is strictly increasing; a group's first and last points are
    always vertices).

    Points on or above the chord between their neighbours are dropped, all at once, until
    none is: such a point lies above a chord of its group's points, so it is never a vertex,
    and a chain with none left is convex."""
    alive = np.ones(len(key), dtype=bool)
    end = np.r_[True, group[1:] != group[:-1]] | np.r_[group[:-1] != group[1:], True]
    y = key.astype(np.float64)
    while True:
        live = np.flatnonzero(alive)
        pos = np.flatnonzero(~end[live])
        if not len(pos):
            break
        prev, mid, nxt = live[pos - 1], live[pos], live[pos + 1]
        # > 0: mid is strictly below the chord from prev to next
        cross = (y[mid] - y[prev]) * (x[nxt] - x[prev]) - (x[mid] - x[prev]) * (y[nxt] - y[prev])
        drop = mid[cross <= 0]
        if not len(drop):
            break
        alive[drop] = False
    return x[alive], key[alive]
