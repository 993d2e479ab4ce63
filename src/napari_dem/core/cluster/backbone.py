"""The backbone every clustering objective shares: a small CNN (2D or 3D) and its augmentations.

The encoder maps an item to a feature vector ``h``; each objective puts its own cluster head on
``h``. Training signal comes mostly from *views*: two random augmentations of the same item must
land in the same cluster. The augmentations say what a cluster should ignore: position, small
rotations, zoom, shear, brightness and contrast, noise for 2D images; for volumes, which come
in their object's principal-axis frame (:mod:`.items`), a flip of each axis and a small turn.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _block(dims: int, c_in: int, c_out: int) -> list[nn.Module]:
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
    return [conv(c_in, c_out, 3, 1, 1), norm(c_out), nn.ReLU()]


class Encoder(nn.Module):
    """Three 3x3(x3) conv blocks (two max-pools), average-pooled to 2^dims cells, then a linear
    layer to ``feat_dim`` with batch norm. Fully convolutional up to the pooling, so items of any
    side (28 px images, 20 px slices) give features of the same size."""

    def __init__(self, dims: int = 2, width: int = 16, feat_dim: int = 128) -> None:
        super().__init__()
        pool = nn.MaxPool2d(2) if dims == 2 else nn.MaxPool3d(2)
        avg = nn.AdaptiveAvgPool2d(2) if dims == 2 else nn.AdaptiveAvgPool3d(2)
        w = width
        self.dims = dims
        self.net = nn.Sequential(
            *_block(dims, 1, w), pool, *_block(dims, w, 2 * w), pool, *_block(dims, 2 * w, 4 * w), avg,
            nn.Flatten(), nn.Linear(4 * w * 2**dims, feat_dim), nn.BatchNorm1d(feat_dim), nn.ReLU(),
        )  # fmt: skip
        self.feat_dim = feat_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class AttentionPool(nn.Module):
    """Attention pooling of slice embeddings ``(B, D, F)`` into one volume embedding ``(B, F)``
    (Ilse et al. 2018 gated-free form: ``a = softmax(w . tanh(V h + pos))``)."""

    def __init__(self, feat_dim: int, hidden: int = 64, max_slices: int = 64) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(max_slices, feat_dim))
        self.v = nn.Linear(feat_dim, hidden)
        self.w = nn.Linear(hidden, 1)

    def forward(self, h: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        hp = h + self.pos[: h.shape[1]]
        score = self.w(torch.tanh(self.v(hp))).squeeze(-1)  # (B, D)
        if keep is not None:
            score = score.masked_fill(~keep, float("-inf"))
        return (torch.softmax(score, 1).unsqueeze(-1) * h).sum(1)


def _uniform(n: int, gen: torch.Generator, amp: float) -> torch.Tensor:
    return (torch.rand(n, generator=gen) * 2 - 1) * amp


def _rotation3d(n: int, gen: torch.Generator, degrees: float) -> torch.Tensor:
    """``n`` random 3D rotations: a turn of up to ``degrees`` about a random axis (Rodrigues),
    composed with a random sign flip of each axis.

    Volumes come in their principal-axis frame (:mod:`.items`), which is defined only up to the
    sign of each axis: the flips make a cluster ignore that sign, the small turn the error of the
    estimated axes. Any 3D rotation instead would throw the alignment away (shapes3d at noise 0.5:
    ACC 0.97 after 100 steps falling to 0.30 at 300).
    """
    u = torch.randn(n, 3, generator=gen)
    u = u / u.norm(dim=1, keepdim=True).clamp_min(1e-9)
    a = _uniform(n, gen, math.radians(degrees)).view(n, 1, 1)
    k = torch.zeros(n, 3, 3)
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -u[:, 2], u[:, 1], -u[:, 0]
    k = k - k.transpose(1, 2)
    rot = torch.eye(3) + torch.sin(a) * k + (1 - torch.cos(a)) * (k @ k)
    flips = torch.where(torch.rand(n, 3, generator=gen) < 0.5, -1.0, 1.0)
    return rot * flips.unsqueeze(1)


def augment(
    x: torch.Tensor,
    gen: torch.Generator,
    rotation: float = 20.0,
    zoom: float = 0.15,
    shift: float = 0.12,
    shear: float = 0.15,
    gamma: float = 0.3,
    contrast: float = 0.2,
    noise: float = 0.05,
) -> torch.Tensor:
    """Random views of ``(N, 1, S, S)`` images or ``(N, 1, V, V, V)`` volumes.

    Geometry (one resampling): 2D rotation up to ``rotation`` degrees and shear, or for volumes
    a turn of up to ``rotation`` degrees about a random axis with a random flip of each axis;
    zoom ``1 +- zoom``; shift up to ``shift`` of the half-side. Intensity: gamma
    ``exp(+-gamma)``, contrast ``1 +- contrast``, Gaussian noise of s.d. ``noise``. All
    randomness comes from ``gen``, so a seed gives the same views on any machine.
    """
    n, dims = len(x), x.ndim - 2
    s = 1.0 + _uniform(n, gen, zoom)
    if dims == 2:
        a = _uniform(n, gen, math.radians(rotation))
        rot = torch.stack([torch.cos(a), -torch.sin(a), torch.sin(a), torch.cos(a)], 1).view(n, 2, 2)
        rot = rot + torch.stack(
            [torch.zeros(n), _uniform(n, gen, shear), torch.zeros(n), torch.zeros(n)], 1
        ).view(n, 2, 2)
    else:
        rot = _rotation3d(n, gen, rotation)
    theta = torch.cat([rot / s.view(n, 1, 1), (torch.rand(n, dims, 1, generator=gen) * 2 - 1) * shift], 2)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, padding_mode="zeros", align_corners=False).clamp(0, 1)
    shape = (n,) + (1,) * (dims + 1)
    g = torch.exp(_uniform(n, gen, gamma)).view(shape).to(x.device)
    c = (1.0 + _uniform(n, gen, contrast)).view(shape).to(x.device)
    out = out.clamp_min(1e-6).pow(g) * c
    return out + noise * torch.randn(out.shape, generator=gen).to(x.device)
