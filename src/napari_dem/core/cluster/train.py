"""The training loop every method shares: batches, the stopping rule, the confidence margin.

**Stopping rule.** Every ``check_every`` steps the cluster of every item is read off (clean
items, batch norm in inference mode with statistics recomputed over all items); training stops
when fewer than ``tolerance`` of the items changed cluster since the previous check (and at
least ``min_steps`` were taken), or at the step cap. It counts steps, never seconds, so a seed
gives the same result on any machine.

**Confidence.** Softmax posteriors of a trained network are ~1 for nearly every item, and a
temperature fitted to make them predict the clusters of augmented views stayed at its lowest
value when views never change cluster (bars and crosses: every confidence 1.000). The
confidence is therefore a stated margin in the encoder's feature space: with ``d_own`` the
distance of an item's features to the centre (mean features) of its cluster and ``d_other``
the distance to the nearest other cluster's centre, ``d_other / (d_own + d_other)``: 1 at its
cluster's centre, 0.5 when as close to another cluster, below 0.5 when closer to another one.
It is multiplied by the share of the item and its ``tta_views`` augmentations that the
network puts in that cluster, so an item whose views fall in other clusters scores lower too.
(Averaging the views' own margins instead blurred the contrast: bars 0.86, crosses halfway
between them 0.81, against 0.96 and 0.79 for the clean margin.) The reported cluster is the
clean item's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..progress import CancelToken, ProgressFn, check_cancel, report
from .base import ClusterSettings, Method
from .dem import Dem
from .depict import Depict
from .gedi import Gedi
from .items import MixedItems
from .joint import Joint
from .nmm import Nmm

METHODS = ("gedi", "dem", "joint", "depict", "nmm")  #: the first is the default
_CLASSES: dict[str, type[Method]] = {"dem": Dem, "gedi": Gedi, "joint": Joint, "depict": Depict, "nmm": Nmm}


@dataclass
class ClusterResult:
    labels: np.ndarray  #: (N,) cluster ids 1..K
    confidence: np.ndarray  #: (N,) margin of the chosen cluster in feature space, in [0, 1]
    embedding: np.ndarray  #: (N, F) encoder features
    method: str = "gedi"
    steps: int = 0  #: training steps taken
    stop_reason: str = ""  #: why training stopped (stable assignments or the step cap)


def _check(items, n_clusters: int) -> tuple[dict[str, torch.Tensor], np.ndarray | None]:
    """Tensors per kind ("2d", "3d") and, for a mix, the kind of each item."""
    if isinstance(items, MixedItems):
        kinds = {"2d": torch.as_tensor(items.images), "3d": torch.as_tensor(items.volumes)}
        order = items.is_volume
    else:
        items = np.asarray(items)
        if items.ndim not in (4, 5) or items.shape[0] == 0 or items.shape[1] != 1:
            raise ValueError(
                "expected a non-empty (N, 1, S, S) image or (N, 1, V, V, V) volume array, "
                f"got shape {items.shape}"
            )
        kinds = {"2d" if items.ndim == 4 else "3d": torch.as_tensor(items, dtype=torch.float32)}
        order = None
    n = sum(len(v) for v in kinds.values())
    if n_clusters < 2:
        raise ValueError(f"the number of clusters must be >= 2, got {n_clusters}")
    if n_clusters > n:
        raise ValueError(f"cannot split {n} items into {n_clusters} clusters (K > number of items)")
    if not all(bool(torch.isfinite(v).all()) for v in kinds.values()):
        raise ValueError("the items contain NaN or infinite values")
    return kinds, order


class _Batches:
    """Epoch-wise shuffled batches of one kind of item, from the run's generator."""

    def __init__(self, x: torch.Tensor, size: int, gen: torch.Generator) -> None:
        self.x, self.size, self.gen = x, min(size, len(x)), gen
        self.perm, self.pos = torch.randperm(len(x), generator=gen), 0

    def next(self) -> torch.Tensor:
        if self.pos + self.size > len(self.x):
            self.perm, self.pos = torch.randperm(len(self.x), generator=self.gen), 0
        idx = self.perm[self.pos : self.pos + self.size]
        self.pos += self.size
        return self.x[idx]


def _calibrate_norms(model: Method, kinds, dev, chunk: int = 512) -> None:
    """Batch-norm statistics recomputed on all clean items ("precise BN") before items are read.

    The running averages follow the last few augmented batches, so the clusters read with them
    jittered from check to check (shapes3d: ACC between 0.86 and 1.0 at successive checks); the
    exact mean and variance over the items themselves do not move between checks unless the
    weights do. Training is unaffected: it uses each batch's own statistics.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the chunks
    model.train()
    with torch.no_grad():
        for x in kinds.values():
            for i in range(0, len(x), chunk):
                if len(x[i : i + chunk]) > 1:
                    model.embed(x[i : i + chunk].to(dev))
    for m, mom in zip(norms, saved, strict=True):
        m.momentum = mom


def _features(model: Method, kinds, order, dev, gen: torch.Generator | None = None, chunk: int = 512):
    """Encoder features of all items in item order (views when ``gen`` is given), inference mode."""
    from .backbone import augment

    model.eval()
    out = {}
    with torch.no_grad():
        for kind, x in kinds.items():
            parts = []
            for i in range(0, len(x), chunk):
                xb = x[i : i + chunk]
                if gen is not None:
                    rot = model.s.rotation if xb.ndim == 4 else 0.0
                    xb = augment(xb, gen, rotation=rot, **model.geometry(xb))
                parts.append(model.embed(xb.to(dev)))
            out[kind] = torch.cat(parts)
    model.train()
    if order is None:
        return next(iter(out.values()))
    h = torch.empty(len(order), out["2d"].shape[1], device=dev)
    h[torch.as_tensor(~order)] = out["2d"]
    h[torch.as_tensor(order)] = out["3d"]
    return h


def _logits(model: Method, h: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.logits_all(h)


def _margin(h: torch.Tensor, lab: torch.Tensor, centres: torch.Tensor, used: torch.Tensor) -> torch.Tensor:
    """``d_other / (d_own + d_other)`` of each feature vector: its distance to the centre of its
    cluster ``lab`` against the distance to the nearest other (non-empty) cluster's centre."""
    d = torch.cdist(h, centres)
    own = d.gather(1, lab[:, None])[:, 0]
    others = d.masked_fill(~used[None], float("inf")).scatter(1, lab[:, None], float("inf"))
    other = others.min(1).values
    return torch.where(torch.isinf(other), torch.ones_like(own), other / (own + other).clamp_min(1e-12))


def _assign(
    model: Method, kinds, order, dev, gen: torch.Generator, tta_views: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Final labels, confidences and embedding of the trained model.

    The clean pass decides the labels; the confidence is the item's margin in feature space
    times the share of it and its ``tta_views`` augmentations that stay in its cluster.
    """
    _calibrate_norms(model, kinds, dev)
    h = _features(model, kinds, order, dev)
    lab = _logits(model, h).argmax(1)
    k = model.k
    counts = torch.bincount(lab, minlength=k)
    centres = torch.zeros(k, h.shape[1], device=h.device).index_add_(0, lab, h)
    centres = centres / counts.clamp_min(1)[:, None]
    used = counts > 0
    stay = torch.ones(len(h), device=h.device)
    for _ in range(tta_views):
        stay += (_logits(model, _features(model, kinds, order, dev, gen)).argmax(1) == lab).float()
    conf = _margin(h, lab, centres, used) * stay / (tta_views + 1)
    return lab.cpu(), conf.cpu(), h


def cluster_images(
    images,
    n_clusters: int,
    method: str = "gedi",
    steps: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    device: str | torch.device = "cpu",
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    settings: ClusterSettings | None = None,
    on_check: Callable[[int, np.ndarray], None] | None = None,
) -> ClusterResult:
    """Cluster prepared items (:func:`prepare_images`: images, volumes or a mix) into K groups.

    ``steps`` caps training (default ``settings.max_steps``); training usually stops earlier,
    when assignments are stable (see the module docstring). ``method``: one of :data:`METHODS`.
    ``on_check(step, labels)`` sees the assignments (0-based) at every check (benchmarks use it
    to follow accuracy during training).
    """
    s = settings or ClusterSettings()
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    kinds, order = _check(images, n_clusters)
    if order is not None and not _CLASSES[method].supports_mixed:
        raise ValueError(
            f"method {method!r} cannot cluster 2D images and 3D volumes together; use method 'joint'"
        )
    cap = s.max_steps if steps is None else steps
    if cap < 1:
        raise ValueError(f"steps must be >= 1, got {cap}")
    bs = batch_size or s.batch_size
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # weight init from the seed, global RNG state untouched
        torch.manual_seed(seed)
        model = _CLASSES[method](n_clusters, 3 if "3d" in kinds and order is None else 2, s).to(dev)
    model.start(_features(model, kinds, order, dev), gen)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    batches = {k: _Batches(x, bs if k == "2d" else max(2, bs // 4), gen) for k, x in kinds.items()}
    n = len(order) if order is not None else len(next(iter(kinds.values())))
    previous = None
    reason = f"step cap reached ({cap} steps)"
    step = 0
    for step in range(1, cap + 1):
        check_cancel(cancel)
        loss = sum(model.loss(b.next().to(dev), gen) for b in batches.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        message = f"{method}: training"
        if step % s.check_every == 0 and step < cap:
            _calibrate_norms(model, kinds, dev)
            labels = _logits(model, _features(model, kinds, order, dev)).argmax(1)
            if on_check is not None:
                on_check(step, labels.cpu().numpy())
            if previous is not None:
                changed = float((labels != previous).float().mean())
                message = f"{method}: {100 * changed:.1f} % of items changed cluster"
                if changed < s.tolerance and step >= s.min_steps:
                    reason = (
                        f"assignments stable: {100 * changed:.2f} % of items changed cluster in the last "
                        f"{s.check_every} steps (< {100 * s.tolerance:g} %)"
                    )
                    report(progress, step, step, message)
                    break
            previous = labels
        report(progress, step, cap, message)
    lab, conf, h = _assign(model, kinds, order, dev, gen, s.tta_views)
    assert len(lab) == n
    return ClusterResult(
        labels=(lab.numpy() + 1).astype(np.int64),
        confidence=conf.numpy().clip(0, 1).astype(np.float64),
        embedding=h.cpu().numpy(),
        method=method,
        steps=step,
        stop_reason=reason,
    )
