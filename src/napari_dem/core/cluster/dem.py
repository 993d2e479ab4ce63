"""``dem``: DEM's EM layer as the cluster head.

Codes ``z`` (a linear map of the features, standardised: centred, one common scale) are
clustered by a diagonal Gaussian mixture. An online-EM mixture (:class:`OnlineGMM`) is started
on the codes of all items; per batch, ``em_steps`` unrolled, differentiable EM steps started
from it fit the codes of both views (so components keep their identity from batch to batch;
the default 0 uses the online mixture as it is: the unrolled steps made assignments churn,
15 % per 100 steps on digits), and the posteriors of the two views enter the shared view
terms. DEM's own losses are added: the mixture's negative log-likelihood and the entropy of
each posterior. The online mixture then takes the batch's statistics.
"""

from __future__ import annotations

import torch
from torch import nn

from ..em import OnlineGMM, e_step, fit_gmm
from .base import ClusterSettings, Method


def standardise(z: torch.Tensor) -> torch.Tensor:
    c = z - z.mean(0, keepdim=True)
    return c / (c.pow(2).mean().sqrt() + 1e-5)


class Dem(Method):
    name = "dem"

    def __init__(self, k: int, dims: int, s: ClusterSettings) -> None:
        super().__init__(k, dims, s)
        self.code = nn.Linear(s.feat_dim, s.latent_dim)
        self.online: OnlineGMM | None = None

    def start(self, h: torch.Tensor, gen: torch.Generator) -> None:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        self.online = OnlineGMM(self.k, reg_covar=self.s.reg_covar, seed=seed)
        with torch.no_grad():
            self.online.partial_fit(standardise(self.code(h)).cpu())

    def logits_all(self, h: torch.Tensor) -> torch.Tensor:
        """Posteriors of the mixture refitted on these codes (``refit_steps`` of batch EM started
        from the online mixture, which lags behind the moving encoder)."""
        z = standardise(self.code(h))
        init = self.online.params.to(z.device)
        _, log_resp, _ = fit_gmm(z[None], self.k, self.s.refit_steps, reg_covar=self.s.reg_covar, init=init)
        return log_resp[0]

    def loss(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        s = self.s
        xa, xb = self.views(x, gen)
        z = standardise(self.code(self.embed(torch.cat([xa, xb]))))
        params, _, _ = fit_gmm(
            z[None], self.k, s.em_steps, reg_covar=s.reg_covar, init=self.online.params.to(z.device)
        )
        log_r, log_lik = e_step(z[None], params)
        log_r = log_r[0]
        self.online.partial_fit(z.detach().cpu())
        nll = -log_lik.mean() / z.shape[-1]
        ent = -(log_r.exp() * log_r).sum(1).mean()
        n = len(x)
        return self.view_terms(log_r[:n], log_r[n:]) + s.nll_weight * nll + s.entropy_weight * ent
