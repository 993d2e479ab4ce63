"""The training loop every method shares: batches, the stopping rule, calibrated confidence.

**Stopping rule.** Every ``check_every`` steps the cluster of every item is read off (clean
items, batch norm in inference mode); training stops when fewer than ``tolerance`` of the items
changed cluster since the previous check (and at least ``min_steps`` were taken), or at the step
cap. It counts steps, never seconds, so a seed gives the same result on any machine.

**Confidence.** Softmax posteriors of a trained network are nearly always ~1. So the cluster
logits are divided by a temperature fitted on the items themselves (the clean item's posterior
must predict the cluster a random augmentation of it lands in: minimum cross-entropy over a grid),
and the final posterior is the mean of the tempered posteriors of the item and of ``tta_views``
augmentations of it. The reported cluster is the clean item's; the confidence is the final
posterior of that cluster: low for items whose views fall in different clusters, e.g. items
between two clusters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

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
    confidence: np.ndarray  #: (N,) calibrated posterior of the chosen cluster, in [0, 1]
    embedding: np.ndarray  #: (N, F) encoder features
    method: str = "gedi"
    steps: int = 0  #: training steps taken
    stop_reason: str = ""  #: why training stopped (stable assignments or the step cap)
    temperature: float = 1.0  #: fitted logit temperature of the confidence


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
                    xb = augment(xb, gen, rotation=rot, zoom=model.s.zoom, shift=model.s.shift)
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


def _temperature(clean: torch.Tensor, views: list[torch.Tensor]) -> float:
    """The temperature whose tempered clean posterior best predicts the views' clusters."""
    best, best_t = float("inf"), 1.0
    for t in np.geomspace(0.25, 64, 49):
        nll = sum(F.cross_entropy(clean / t, v.argmax(1)).item() for v in views)
        if nll < best:
            best, best_t = nll, float(t)
    return best_t


def _assign(
    model: Method, kinds, order, dev, gen: torch.Generator, tta_views: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Final labels, confidences, embedding and temperature of the trained model.

    The clean pass decides the labels; augmented views calibrate the confidence (temperature).
    """
    h = _features(model, kinds, order, dev)
    clean = _logits(model, h)
    views = [_logits(model, _features(model, kinds, order, dev, gen)) for _ in range(tta_views)]
    t = _temperature(clean, views) if views else 1.0
    post = torch.stack([F.softmax(v / t, 1) for v in [clean, *views]]).mean(0).cpu()
    lab = clean.argmax(1).cpu()  # the clean item decides (digits: 0.959 vs 0.945 for the mean's argmax)
    conf = post.gather(1, lab[:, None])[:, 0]
    return lab, conf, h, t


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
    lab, conf, h, t = _assign(model, kinds, order, dev, gen, s.tta_views)
    assert len(lab) == n
    return ClusterResult(
        labels=(lab.numpy() + 1).astype(np.int64),
        confidence=conf.numpy().clip(0, 1).astype(np.float64),
        embedding=h.cpu().numpy(),
        method=method,
        steps=step,
        stop_reason=reason,
        temperature=t,
    )
