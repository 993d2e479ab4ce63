"""Fit or fine-tune a DEM model on images, unsupervised, with progress and cancellation.

One loop serves the CLI (``napari-dem fine-tune``), the training script of the
shipped model, and the napari fine-tune widget: it takes normalised training
units, draws random patches with augmentation (``torchvision.transforms.v2``
flips and 90-degree rotations, intensity jitter), and minimises the DEM loss.
The best weights seen so far (by a smoothed loss) are kept, so stopping early
always leaves a usable model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .._compat import block_triton_if_gl_loaded
from .errors import InputError
from .frames import read_frames
from .intensity import normalization
from .layout import parse_axes
from .model import DEMModel, resolve_device
from .padding import read_padded
from .progress import Cancelled, CancelToken
from .segment import choose_mode, validate_image
from .stains import read_stained


@dataclass
class TrainSettings:
    steps: int = 200
    batch_size: int = 8
    patch_size: int = 96  #: side of the square (or cubic) training patches
    lr: float = 2e-3
    seed: int = 0
    flips: bool = True
    rotations: bool = True
    intensity_jitter: float = 0.2  #: +- relative gain and offset; 0 = off
    grad_clip: float = 1.0

    def validate(self) -> None:
        if self.steps < 1:
            raise InputError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            raise InputError(f"batch size must be >= 1, got {self.batch_size}")
        if self.patch_size < 16:
            raise InputError(f"patch size must be >= 16, got {self.patch_size}")
        if not (0 < self.lr < 1):
            raise InputError(f"learning rate must be in (0, 1), got {self.lr}")
        if not 0 <= self.intensity_jitter < 1:
            raise InputError(f"intensity jitter must be in [0, 1), got {self.intensity_jitter}")


@dataclass
class TrainStep:
    step: int
    total: int
    losses: dict[str, float]


@dataclass
class TrainHistory:
    steps: list[TrainStep] = field(default_factory=list)
    best_step: int = -1
    cancelled: bool = False

    def series(self, key: str = "total") -> list[float]:
        return [s.losses[key] for s in self.steps]


def training_units(
    image, axes: str | None, ndim: int, rgb: bool | None = None, stain: str = "auto", frames: str = "auto"
) -> list[np.ndarray]:
    """Normalised float32 arrays ``(C, *spatial)`` (one per slice in 2D, per frame in 3D).

    A stained slide is read as the segmenter reads it at the same ``stain`` setting (its
    haematoxylin, :func:`.stains.read_stained`), padding filled in (:mod:`.padding`), and a
    time-lapse's frames brought to one brightness as at ``frames`` (:func:`.frames.read_frames`),
    so a model is tuned on what it will see."""
    validate_image(image)
    layout = parse_axes(axes, image.shape, rgb)
    image, _ = read_padded(image, layout)
    image, layout = read_stained(image, layout, stain)
    image, _ = read_frames(image, layout, frames)
    mode = choose_mode(layout, f"{ndim}d", None)
    lo, hi = normalization(image, layout)
    arr = np.asarray(image, dtype=np.float32)
    arr = np.transpose(arr, layout.canonical_order())
    present = [a for a in "TZCYX" if a in layout.axes]
    for i, a in enumerate("TZCYX"):
        if a not in present:
            arr = np.expand_dims(arr, i)
    arr = (arr - lo.reshape(1, 1, -1, 1, 1)) / (hi - lo).reshape(1, 1, -1, 1, 1)
    units = []
    for t in range(arr.shape[0]):
        if mode == "3d":
            units.append(np.ascontiguousarray(np.moveaxis(arr[t], 1, 0)))  # (C, Z, Y, X)
        else:
            units.extend(np.ascontiguousarray(arr[t, z]) for z in range(arr.shape[1]))
    return units


def _random_patch(unit: np.ndarray, size: int, gen: torch.Generator) -> torch.Tensor:
    spatial = unit.shape[1:]
    sl = []
    for s in spatial:
        p = min(size, s)
        start = int(torch.randint(0, s - p + 1, (1,), generator=gen))
        sl.append(slice(start, start + p))
    patch = torch.from_numpy(unit[(slice(None), *sl)])
    pad = []
    for s in reversed(patch.shape[1:]):
        pad += [0, max(0, size - s)]
    if any(pad):
        patch = torch.nn.functional.pad(patch.unsqueeze(0), pad, mode="replicate").squeeze(0)
    return patch


def _flip_2d(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each image flipped left-right, then up-down, each with probability 1/2 (torchvision v2).

    The coin flips come from ``gen``, never from torch's global generator: two trainings in
    two threads (two napari viewers) must not change each other's augmentations.
    """
    from .._compat import transforms_v2

    flips = transforms_v2().functional
    out = []
    for img in batch:
        if bool(torch.rand(1, generator=gen) < 0.5):
            img = flips.horizontal_flip(img)
        if bool(torch.rand(1, generator=gen) < 0.5):
            img = flips.vertical_flip(img)
        out.append(img)
    return torch.stack(out)


def _augment(batch: torch.Tensor, settings: TrainSettings, gen: torch.Generator) -> torch.Tensor:
    spatial_dims = tuple(range(2, batch.ndim))
    if batch.ndim == 4:  # 2D: the torchvision v2 flips
        if settings.flips:
            batch = _flip_2d(
                batch, torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            )
    elif settings.flips:
        for d in spatial_dims:
            if bool(torch.rand(1, generator=gen) < 0.5):
                batch = batch.flip(d)
    if settings.rotations:
        k = int(torch.randint(0, 4, (1,), generator=gen))
        batch = torch.rot90(batch, k, dims=spatial_dims[-2:])
    if settings.intensity_jitter > 0:
        j = settings.intensity_jitter
        b = batch.shape[0]
        shape = (b,) + (1,) * (batch.ndim - 1)
        gain = 1.0 + (torch.rand(shape, generator=gen) * 2 - 1) * j
        offset = (torch.rand(shape, generator=gen) * 2 - 1) * j * 0.5
        batch = batch * gain + offset
    return batch


def fine_tune(
    model: DEMModel,
    units: Sequence[np.ndarray],
    settings: TrainSettings | None = None,
    *,
    device: str | torch.device = "auto",
    progress: Callable[[TrainStep], None] | None = None,
    cancel: CancelToken | None = None,
) -> TrainHistory:
    """Train ``model`` in place on ``units`` (from :func:`training_units`); returns the loss history.

    On cancel, training stops at the next step and the best weights so far are
    loaded into ``model``; ``history.cancelled`` tells it happened.
    """
    block_triton_if_gl_loaded()  # the optimiser and torchvision may import triton
    settings = settings or TrainSettings()
    settings.validate()
    if not units:
        raise InputError("no training images were given")
    ndim = model.config.ndim
    for u in units:
        if u.ndim != ndim + 1:
            raise InputError(
                f"a {ndim}D model needs (C, {'Z, ' if ndim == 3 else ''}Y, X) units, got {u.shape}"
            )
        if u.shape[0] != model.config.in_channels and model.config.in_channels != 1:
            raise InputError(f"the model takes {model.config.in_channels} channels, got {u.shape[0]}")
    # The model sees one channel at a time: every channel of every unit is a sample.
    singles = [u[c : c + 1] for u in units for c in range(u.shape[0])]
    dev = resolve_device(device)
    gen = torch.Generator().manual_seed(settings.seed)
    model.to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=settings.steps, eta_min=settings.lr * 0.05)
    history = TrainHistory()
    best_state = copy.deepcopy(model.state_dict())
    best_loss, smooth = math.inf, None
    try:
        for step in range(settings.steps):
            if cancel is not None:
                cancel.check()
            picks = torch.randint(0, len(singles), (settings.batch_size,), generator=gen).tolist()
            batch = torch.stack([_random_patch(singles[i], settings.patch_size, gen) for i in picks])
            batch = _augment(batch, settings, gen).to(dev)
            em_gen = torch.Generator().manual_seed(settings.seed * 100_003 + step)
            out = model(batch, generator=em_gen)
            losses = model.losses(batch, out)
            opt.zero_grad(set_to_none=True)
            losses["total"].backward()
            if settings.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            opt.step()
            sched.step()
            record = TrainStep(step + 1, settings.steps, {k: float(v.detach()) for k, v in losses.items()})
            history.steps.append(record)
            total = record.losses["total"]
            smooth = total if smooth is None else 0.9 * smooth + 0.1 * total
            if not math.isfinite(total):
                raise FloatingPointError(
                    f"the loss became {total} at step {step + 1}; try a lower learning rate"
                )
            if smooth < best_loss and step >= min(10, settings.steps - 1) // 2:
                best_loss, history.best_step = smooth, step + 1
                best_state = copy.deepcopy(model.state_dict())
            if progress is not None:
                progress(record)
    except Cancelled:
        history.cancelled = True
    model.load_state_dict(best_state)
    model.eval()
    return history
