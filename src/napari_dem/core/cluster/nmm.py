"""``nmm``: a neural mixture model trained by EM on two views.

The head outputs K log-densities ``log pi_k - ||z - mu_k||^2 / 2`` on the standardised code
(one common normalisation). E-step: the posterior of one view, without gradient; M-step: a
gradient step on the expected complete-data log-likelihood of the *other* view, both ways, so
the EM fixed point is also invariant to the augmentations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..em import kmeans_resp
from .base import ClusterSettings, Method
from .dem import standardise


class Nmm(Method):
    name = "nmm"

    def __init__(self, k: int, dims: int, s: ClusterSettings) -> None:
        super().__init__(k, dims, s)
        self.code = nn.Linear(s.feat_dim, s.latent_dim)
        self.means = nn.Parameter(torch.zeros(k, s.latent_dim))
        self.log_prior = nn.Parameter(torch.zeros(k))

    def start(self, h: torch.Tensor, gen: torch.Generator) -> None:
        with torch.no_grad():
            z = standardise(self.code(h))
            resp = kmeans_resp(z[None].cpu(), self.k, gen)[0].to(z.device)
            self.means.copy_((resp.T @ z) / resp.sum(0).clamp(min=1)[:, None])

    def logits_all(self, h: torch.Tensor) -> torch.Tensor:
        z = standardise(self.code(h))
        return F.log_softmax(self.log_prior, 0) - 0.5 * torch.cdist(z, self.means).pow(2)

    def loss(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        xa, xb = self.views(x, gen)
        logits = self.logits_all(self.embed(torch.cat([xa, xb])))
        la, lb = logits[: len(x)], logits[len(x) :]
        ecll = 0.0
        for src, dst in ((la, lb), (lb, la)):
            r = F.softmax(src.detach(), 1)  # E-step
            ecll = ecll - (r * dst).sum(1).mean() / self.s.latent_dim  # M-step objective
        return self.view_terms(la, lb) + ecll
