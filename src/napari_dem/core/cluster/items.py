"""Items to cluster: 2D images and 3D volumes, each scaled to [0, 1] and resized to one side.

A collection is one array when all items have the same dimensionality (``(N, 1, S, S)`` images
or ``(N, 1, V, V, V)`` volumes) and a :class:`MixedItems` when 2D and 3D items are mixed. Each
item is scaled by its own 0.5/99.5 percentiles, so brightness differences between crops do not
dominate the clustering.

Volumes are also brought to a canonical pose (:func:`canonical_volume`): centred on their
brightest object, turned to its principal axes and scaled to its extent. A 3D object has no
preferred orientation or position in its crop, and a small 3D network cannot learn every
rotation from a few hundred items: on the generated shapes3d set the default method reached
ACC 0.52 with randomly rotated views alone (noise 0.25, 600 steps) and 1.00 on canonical
volumes (noise 0.25 and 0.5, 200 steps; docs/benchmarks.md).
The axes' signs stay undetermined; the views flip them (:func:`.backbone.augment`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: axes names accepted for a stack of items
AXES = ("NYX", "NYXC", "NZYX")
#: default side of a prepared volume: 3D convolutions cost V^3, and 20^3 keeps a few hundred
#: objects within a minute or two of CPU while keeping a hollow shell's wall visible
VOLUME_SIZE = 20
#: the note :func:`prepare_images` gives for volumes (see :func:`canonical_volume`)
POSE_NOTE = "volumes turned to their object's principal axes and scaled to its extent"


@dataclass
class MixedItems:
    """2D images and 3D volumes clustered together (only ``method="joint"`` learns from both)."""

    images: np.ndarray  #: (N2, 1, S, S) float32
    volumes: np.ndarray  #: (N3, 1, V, V, V) float32
    is_volume: np.ndarray  #: (N,) bool: item i is volumes[rank] if True, else images[rank]

    def __len__(self) -> int:
        return len(self.is_volume)


def guess_axes(ndim: int, shape: tuple[int, ...]) -> str:
    """Axes of an item stack: 3D -> NYX; 4D -> NZYX (N volumes) unless the last axis has 3 or 4
    entries (RGB(A) images, NYXC)."""
    if ndim == 3:
        return "NYX"
    if ndim == 4:
        return "NYXC" if shape[-1] in (3, 4) else "NZYX"
    raise ValueError(f"a stack of items must be 3D (NYX) or 4D (NYXC or NZYX), got shape {shape}")


def _to_grey(img: np.ndarray, colour: bool) -> np.ndarray:
    img = np.asarray(img)
    if colour:
        img = img[..., :3].astype(np.float64).mean(-1) if img.shape[-1] in (3, 4) else img.mean(-1)
    if img.dtype.kind not in "biuf":
        raise ValueError(f"items must be numeric, got dtype {img.dtype}")
    return img.astype(np.float64)


def _scaled(item: np.ndarray, index: int) -> np.ndarray:
    if not np.all(np.isfinite(item)):
        raise ValueError(f"item {index} contains NaN or infinite values")
    lo, hi = np.percentile(item, (0.5, 99.5))
    return np.clip((item - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(item)


def _resized(item: np.ndarray, side: int) -> np.ndarray:
    from skimage.transform import resize

    target = (side,) * item.ndim
    if item.shape == target:
        return item
    return resize(item, target, anti_aliasing=max(item.shape) > side)


def _pose(item: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Centre, principal axes (columns, largest first, right-handed) and half-extent of the
    largest bright component of a volume, in physical units (voxel index x ``spacing``), or
    None when it has none.

    The volume is smoothed first (sigma = side / 16, at least 1 voxel): the pose of a noisy object
    comes from its smoothed mass (shapes3d at noise 0.5: k-means on canonical voxels ACC 0.78
    with sigma 1, 1.00 with sigma 2 on 32^3 crops). Otsu's threshold finds the object; the
    moments are weighted by the smoothed intensity above the median inside it.
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    smooth = ndi.gaussian_filter(item, max(1.0, max(item.shape) / 16) * spacing.min() / spacing)
    if smooth.max() - smooth.min() < 1e-9:
        return None
    lab, n = ndi.label(smooth > threshold_otsu(smooth))
    if n == 0:
        return None
    mask = lab == np.argmax(np.bincount(lab.ravel())[1:]) + 1
    w = np.clip(smooth - np.median(smooth), 0, None) * mask
    if w.sum() <= 0 or mask.sum() < 4:
        return None
    pts = np.argwhere(w > 0) * spacing
    ww = w[w > 0]
    centre = (pts * ww[:, None]).sum(0) / ww.sum()
    d = pts - centre
    ev, axes = np.linalg.eigh((d * ww[:, None]).T @ d / ww.sum())
    axes = axes[:, ::-1].copy()
    if np.linalg.det(axes) < 0:
        axes[:, 2] *= -1
    return centre, axes, 2.2 * float(np.sqrt(max(ev[-1], 0.25 * spacing.min() ** 2)))


def canonical_volume(item: np.ndarray, side: int, spacing=None) -> np.ndarray:
    """``side^3`` resampling of a volume in its object's frame: centred on the object, axes along
    its principal axes (longest first), half-side 2.2 s.d. of its mass along the longest axis.
    ``spacing``: the voxel size (Z, Y, X; any unit): a Z-stack's coarser Z step would otherwise
    squash every object along Z. A volume with no object (constant, or no bright component) is
    resized as it is."""
    from scipy import ndimage as ndi

    spacing = np.ones(3) if spacing is None else np.asarray(spacing, np.float64)
    if spacing.shape != (3,) or not np.all(spacing > 0):
        raise ValueError(f"the voxel size must be 3 positive numbers (Z, Y, X), got {spacing.tolist()}")
    pose = _pose(item, spacing)
    if pose is None:
        return _resized(item, side)
    centre, axes, half = pose
    grid = (np.indices((side,) * 3).reshape(3, -1).T + 0.5) / side * 2 - 1  # (-1, 1) cell centres
    coords = ((grid * half) @ axes.T + centre) / spacing  # physical -> voxel index
    return ndi.map_coordinates(item, coords.T, order=1, mode="constant").reshape((side,) * 3)


def split_items(stack, axes: str | None = None) -> list[np.ndarray]:
    """Grey 2D (YX) or 3D (ZYX) arrays, one per item, from a stack or a list of arrays."""
    if isinstance(stack, np.ndarray):
        if stack.size == 0 or stack.ndim == 0 or stack.shape[0] == 0:
            raise ValueError("the item stack is empty")
        axes = (axes or guess_axes(stack.ndim, stack.shape)).upper()
        if axes not in AXES:
            raise ValueError(f"axes must be one of {', '.join(AXES)}, got {axes!r}")
        if len(axes) != stack.ndim:
            raise ValueError(f"axes {axes} do not fit a stack of shape {stack.shape}")
        return [_to_grey(it, axes == "NYXC") for it in stack]
    items = list(stack)
    if not items:
        raise ValueError("the item stack is empty")
    out = []
    for i, it in enumerate(items):
        it = np.asarray(it)
        if it.ndim == 3 and it.shape[-1] in (3, 4) and min(it.shape[:2]) > 4:
            out.append(_to_grey(it, True))  # an RGB(A) image
        elif it.ndim in (2, 3):
            out.append(_to_grey(it, False))
        else:
            raise ValueError(f"item {i} must be 2D (YX, YXC) or 3D (ZYX), got shape {it.shape}")
    return out


def prepare_images(
    stack,
    size: int = 28,
    axes: str | None = None,
    volume_size: int = VOLUME_SIZE,
    align: bool = True,
    spacing=None,
) -> tuple[np.ndarray | MixedItems, list[str]]:
    """Scaled, resized items and notes: ``(N, 1, size, size)`` for images, ``(N, 1, V, V, V)``
    (``V = volume_size``) for volumes, :class:`MixedItems` for a mix.

    ``stack``: an array (first axis = items; ``axes`` NYX, NYXC or NZYX, guessed when None: a
    4D array is N volumes unless its last axis has 3 or 4 entries) or a list of 2D/3D arrays.
    ``align``: bring each volume to its object's canonical pose (:func:`canonical_volume`); off
    for volumes that are whole scenes (the frames of a 3D time-lapse), not one object each.
    ``spacing``: the voxel size (Z, Y, X) of the volumes, for the pose (Z-stacks).
    """
    items = split_items(stack, axes)
    notes: list[str] = []
    shapes = {g.shape for g in items}
    flat = [g for g in items if g.ndim == 2]
    vols = [g for g in items if g.ndim == 3]
    if len(shapes) > 1:
        notes.append(
            f"items have {len(shapes)} different sizes; all resized to side {size if flat else volume_size}"
        )
    elif flat and flat[0].shape != (size, size):
        notes.append(f"images of {flat[0].shape[0]}x{flat[0].shape[1]} resized to {size}x{size}")
    elif vols and vols[0].shape != (volume_size,) * 3:
        notes.append(f"volumes of {'x'.join(map(str, vols[0].shape))} resized to {volume_size}^3")
    if vols and align:
        notes.append(POSE_NOTE)
    scaled = [_scaled(g, i) for i, g in enumerate(items)]
    images = np.stack([_resized(g, size) for g in scaled if g.ndim == 2]) if flat else None

    def volume(g: np.ndarray) -> np.ndarray:
        return canonical_volume(g, volume_size, spacing) if align else _resized(g, volume_size)

    volumes = np.stack([volume(g) for g in scaled if g.ndim == 3]) if vols else None
    if volumes is None:
        return images[:, None].astype(np.float32), notes
    if images is None:
        return volumes[:, None].astype(np.float32), notes
    notes.append(f"{len(flat)} images and {len(vols)} volumes: only method 'joint' clusters them together")
    is_volume = np.array([g.ndim == 3 for g in items])
    return MixedItems(
        images[:, None].astype(np.float32), volumes[:, None].astype(np.float32), is_volume
    ), notes
