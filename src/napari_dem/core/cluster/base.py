"""What every clustering objective shares: settings, the encoder, views and the view terms.

A method is an ``nn.Module`` with an encoder (``embed``: items -> features ``h``), a cluster head
(``logits_all``: features of many items -> unnormalised log posteriors ``(N, K)``) and a
``loss`` on a batch of items. The shared *view terms* are the cluster-based self-supervision all
of them build on: two random views of an item should share a cluster (``-log <p_a, p_b>``, as in
SCAN), clusters should be used evenly (``- H(mean p)``), and confident assignments of one view
teach the other (self-labelling, as in FixMatch). Each objective adds its own term.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import Encoder, augment


@dataclass
class ClusterSettings:
    """Knobs of :func:`cluster_images`; the defaults are the measured ones (docs/benchmarks.md)."""

    max_steps: int = 600  #: step cap of the stopping rule (MNIST-5k: ACC 0.949 at 200, 0.964 at 300)
    check_every: int = 100  #: steps between two assignment checks of the stopping rule
    tolerance: float = 0.005  #: stop when fewer than this fraction of items changed cluster
    min_steps: int = 200  #: never stop before this many steps
    batch_size: int = 128  #: images per step (volumes: a quarter)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    width: int = 16  #: channels of the first conv block
    feat_dim: int = 128  #: encoder output
    latent_dim: int = 16  #: code for the mixture heads (dem, nmm)
    rotation: float = 20.0  #: view rotation in degrees (volumes: about a random axis, plus axis flips)
    #: Views: zoom ``1 +- zoom``, shift up to ``shift`` of the half-side.
    zoom: float = 0.15
    shift: float = 0.12
    #: Wider views of 2D items for the contrastive method (joint): an instance contrast learns
    #: only the invariances its views teach (SimCLR's lesson). Shapes test: 0.41-0.43 ->
    #: 0.56-0.57 (k-means 0.39); digits 0.879 -> 0.957; MNIST-5k 0.977 -> 0.971. The other
    #: methods keep the views above: with these, digits / MNIST-5k moved dem 0.908 / 0.763 ->
    #: 0.838 / 0.685, gedi 0.962 / 0.976 -> 0.979 / 0.967, depict 0.963 / 0.978 -> 0.960 /
    #: 0.973, nmm 0.859 / 0.943 -> 0.953 / 0.901 (docs/benchmarks.md §6).
    wide_zoom: float = 0.35
    wide_shift: float = 0.3
    balance_weight: float = 5.0  #: - H(mean posterior): even clusters
    self_label_weight: float = 0.5  #: CE of a view against the other's confident cluster
    self_label_threshold: float = 0.95
    # dem
    #: unrolled EM steps per batch, started from the online mixture; 0 = posteriors under the
    #: online mixture itself (measured on digits at step 100: 2 steps ACC 0.711, 0 steps 0.834)
    em_steps: int = 0
    refit_steps: int = 10  #: batch EM steps that refit the mixture to all codes before reading clusters
    nll_weight: float = 0.02
    entropy_weight: float = 0.05
    reg_covar: float = 1e-3
    # gedi
    #: weight of GEDI's energy-based (generative) term. Off by default: at 0.1 and 0.01 it
    #: collapsed digits into one or two clusters within 50 steps (ACC 0.10-0.20 against 0.945
    #: without it; docs/benchmarks.md)
    ebm_weight: float = 0.0
    langevin_steps: int = 5  #: SGLD steps per batch from the replay buffer
    langevin_step_size: float = 1.0
    langevin_noise: float = 0.01
    buffer_size: int = 1000
    negatives: int = 32  #: SGLD samples per batch
    # joint
    temperature: float = 0.5  #: instance contrast (NT-Xent)
    mask_fraction: float = 0.25  #: slices whose embedding is masked and predicted
    slices_per_volume: int = 2  #: slices of each volume that join the 2D contrast
    # confidence
    tta_views: int = 8  #: augmented views averaged into the final posterior


def consistency(la: torch.Tensor, lb: torch.Tensor) -> torch.Tensor:
    """``-log <p_a, p_b>``: both views in one cluster."""
    return -torch.logsumexp(F.log_softmax(la, 1) + F.log_softmax(lb, 1), 1).mean()


def balance(*logits: torch.Tensor) -> torch.Tensor:
    """``- H(mean posterior)`` over the batch (minimise to use all clusters)."""
    p = torch.cat([F.softmax(x, 1) for x in logits]).mean(0)
    return (p * torch.log(p + 1e-8)).sum()


def self_label(la: torch.Tensor, lb: torch.Tensor, threshold: float) -> torch.Tensor:
    """Cross-entropy of each view against the other view's cluster where that one is confident."""
    total = la.new_zeros(())
    for src, dst in ((la, lb), (lb, la)):
        conf, lab = F.softmax(src.detach(), 1).max(1)
        keep = conf > threshold
        if keep.any():
            total = total + F.cross_entropy(dst[keep], lab[keep]) * keep.float().mean()
    return total


class Method(nn.Module):
    """Encoder + cluster head; subclasses define ``logits_all`` and may extend ``loss``."""

    name = ""
    supports_mixed = False
    wide_views = False  #: 2D items get the wide views (ClusterSettings.wide_zoom)

    def __init__(self, k: int, dims: int, s: ClusterSettings) -> None:
        super().__init__()
        self.k, self.dims, self.s = k, dims, s
        self.encoder = Encoder(dims, s.width, s.feat_dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def logits_all(self, h: torch.Tensor) -> torch.Tensor:
        """Unnormalised log posteriors ``(N, K)`` of features ``h`` (all items, or one batch)."""
        raise NotImplementedError

    def start(self, h: torch.Tensor, gen: torch.Generator) -> None:
        """Initialise the head from the features of all items (untrained encoder)."""

    def geometry(self, x: torch.Tensor) -> dict[str, float]:
        """Zoom and shift of the views of a batch ``x`` of 2D images or volumes (settings;
        volumes come in a canonical pose, items.py, and always get the narrow views)."""
        s = self.s
        if x.ndim == 4 and self.wide_views:
            return {"zoom": s.wide_zoom, "shift": s.wide_shift}
        return {"zoom": s.zoom, "shift": s.shift}

    def views(self, x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(augment(x, gen, rotation=self.s.rotation, **self.geometry(x)) for _ in range(2))

    def view_terms(self, la: torch.Tensor, lb: torch.Tensor) -> torch.Tensor:
        s = self.s
        return (
            consistency(la, lb)
            + s.balance_weight * balance(la, lb)
            + s.self_label_weight * self_label(la, lb, s.self_label_threshold)
        )

    def loss(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        xa, xb = self.views(x, gen)
        h = self.embed(torch.cat([xa, xb]))
        logits = self.logits_all(h)
        return self.view_terms(logits[: len(x)], logits[len(x) :])
