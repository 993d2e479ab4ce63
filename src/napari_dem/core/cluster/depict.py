"""``depict``: a softmax head trained against sharpened targets (DEPICT, Ghasedi Dizaji et al.).

Targets ``q ∝ p^2 / f`` (``f``: the cluster's share of the batch) come from one view and are
fixed (no gradient); the other view's softmax is pulled to them by ``KL(q || p)``, both ways.
Sharpening makes confident assignments more confident; dividing by ``f`` is DEPICT's uniform
prior that keeps clusters from swallowing each other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import ClusterSettings, Method


def sharpened(logits: torch.Tensor) -> torch.Tensor:
    p = F.softmax(logits.detach(), 1)
    q = p.pow(2) / p.sum(0, keepdim=True)
    return q / q.sum(1, keepdim=True)


class Depict(Method):
    name = "depict"

    def __init__(self, k: int, dims: int, s: ClusterSettings) -> None:
        super().__init__(k, dims, s)
        self.head = nn.Linear(s.feat_dim, k)

    def logits_all(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h)

    def loss(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        xa, xb = self.views(x, gen)
        logits = self.head(self.embed(torch.cat([xa, xb])))
        la, lb = logits[: len(x)], logits[len(x) :]
        kl = 0.0
        for src, dst in ((la, lb), (lb, la)):
            q = sharpened(src)
            kl = kl + (q * (torch.log(q + 1e-12) - F.log_softmax(dst, 1))).sum(1).mean()
        return self.view_terms(la, lb) + kl
