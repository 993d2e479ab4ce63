"""Gaussian-mixture EM written as differentiable torch operations.

This is the "EM module" of DEM: a diagonal-covariance Gaussian mixture fitted by a
fixed number of unrolled EM steps, so that gradients of any loss on the fitted
mixture flow back into the features. The algebra is the textbook one used by
scikit-learn's ``GaussianMixture(covariance_type="diag")`` (log-domain E-step,
closed-form M-step, ``reg_covar`` variance floor), batched over a leading axis so
that every image of a mini-batch gets its own mixture.

Shapes: ``x`` is ``(B, N, D)`` (B mixtures, N points, D features); mixture
parameters are ``log_weights (B, K)``, ``means (B, K, D)``, ``variances (B, K, D)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: Same tiny constant scikit-learn adds to the component counts to avoid 0/0.
_EPS_COUNT = 10.0 * torch.finfo(torch.float64).eps


@dataclass
class GMMParams:
    """Parameters of B diagonal Gaussian mixtures with K components in D dimensions."""

    log_weights: torch.Tensor  # (B, K)
    means: torch.Tensor  # (B, K, D)
    variances: torch.Tensor  # (B, K, D)

    @property
    def n_components(self) -> int:
        return self.means.shape[-2]

    def detach(self) -> GMMParams:
        return GMMParams(self.log_weights.detach(), self.means.detach(), self.variances.detach())

    def to(self, device: torch.device | str) -> GMMParams:
        return GMMParams(self.log_weights.to(device), self.means.to(device), self.variances.to(device))

    def permute(self, order: torch.Tensor) -> GMMParams:
        """The same mixtures with their components reordered: new component k is old ``order[k]``."""
        return GMMParams(self.log_weights[:, order], self.means[:, order], self.variances[:, order])


def _spread(centred: torch.Tensor, point_dim: int) -> torch.Tensor:
    return centred.pow(2).mean(dim=(point_dim, -1), keepdim=True).sqrt()


def standardization(
    x: torch.Tensor, point_dim: int = 0, eps: float = 1e-5
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, scale) that centre each feature and divide all of them by one common spread.

    The mean is taken over the points (axis ``point_dim``), the spread is the root
    mean variance over points and features together, plus ``eps``. One shared scale,
    not one per feature: a latent channel that is nearly constant must stay nearly
    constant; scaled to unit variance on its own, its noise would get the same say in
    the mixture as the channel that carries the image. Training, segmentation and
    image clustering all standardise this way before EM.
    """
    mean = x.mean(point_dim, keepdim=True)
    return mean, _spread(x - mean, point_dim) + eps


def standardize(x: torch.Tensor, point_dim: int = 0, eps: float = 1e-5) -> torch.Tensor:
    """``x`` standardised by :func:`standardization` of itself (one graph: centred once)."""
    centred = x - x.mean(point_dim, keepdim=True)
    return centred / (_spread(centred, point_dim) + eps)


def log_gaussian(x: torch.Tensor, means: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    """Per-component log density ``log N(x | mu_k, diag(var_k))``, shape ``(B, N, K)``.

    Expanded as sklearn does (``x^2/var - 2 x mu/var + mu^2/var``) so the cost is
    two matrix products instead of a ``(B, N, K, D)`` temporary: this is what keeps
    EM over millions of pixels within memory.
    """
    precisions = 1.0 / variances  # (B, K, D)
    d = x.shape[-1]
    log_det = torch.log(variances).sum(-1)  # (B, K)
    quad = (
        (x * x) @ precisions.transpose(1, 2)
        - 2.0 * x @ (means * precisions).transpose(1, 2)
        + (means * means * precisions).sum(-1).unsqueeze(1)
    )
    return -0.5 * (d * math.log(2.0 * math.pi) + log_det.unsqueeze(1) + quad)


def e_step(
    x: torch.Tensor, params: GMMParams, clamp: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log responsibilities ``(B, N, K)`` and per-point log-likelihood ``(B, N)``.

    ``clamp`` (optional, ``(B, N)`` integer, -1 = free) fixes the responsibility of
    some points to a given component: semi-supervised EM, used by scribble-guided
    refinement. Clamped points still contribute to the log-likelihood.
    """
    weighted = log_gaussian(x, params.means, params.variances) + params.log_weights.unsqueeze(1)
    log_lik = torch.logsumexp(weighted, dim=-1)
    log_resp = weighted - log_lik.unsqueeze(-1)
    if clamp is not None:
        fixed = clamp >= 0
        if bool(fixed.any()):
            k = params.n_components
            onehot = torch.nn.functional.one_hot(clamp.clamp(min=0), k).to(x.dtype)
            clamped = torch.log(onehot.clamp(min=torch.finfo(x.dtype).tiny))
            log_resp = torch.where(fixed.unsqueeze(-1), clamped, log_resp)
    return log_resp, log_lik


def m_step(
    x: torch.Tensor,
    resp: torch.Tensor,
    reg_covar: float = 1e-6,
    point_weights: torch.Tensor | None = None,
) -> GMMParams:
    """Closed-form M-step for diagonal covariances (same formulas as scikit-learn).

    ``resp`` is ``(B, N, K)`` (probabilities, not logs). ``point_weights`` ``(B, N)``
    lets padded or masked points count for nothing.
    """
    if point_weights is not None:
        resp = resp * point_weights.unsqueeze(-1)
    counts = resp.sum(1) + _EPS_COUNT  # (B, K)
    sum_x = resp.transpose(1, 2) @ x  # (B, K, D)
    sum_x2 = resp.transpose(1, 2) @ (x * x)
    return params_from_statistics(counts, sum_x, sum_x2, reg_covar)


def params_from_statistics(
    counts: torch.Tensor, sum_x: torch.Tensor, sum_x2: torch.Tensor, reg_covar: float
) -> GMMParams:
    """Mixture parameters from (possibly averaged) sufficient statistics."""
    means = sum_x / counts.unsqueeze(-1)
    avg_x2 = sum_x2 / counts.unsqueeze(-1)
    variances = (avg_x2 - means * means).clamp(min=0.0) + reg_covar
    log_weights = torch.log(counts) - torch.log(counts.sum(-1, keepdim=True))
    return GMMParams(log_weights, means, variances)


def tie_variances(params: GMMParams) -> GMMParams:
    """The same mixture with one variance for all components: their weighted mean, which is
    the pooled within-component variance (scikit-learn's tied M-step, diagonal).

    Why: classes of a tissue image differ in mean but rarely in noise; with free variances a
    broad component (a class under a bias field) swallows the tails of its narrow neighbours,
    and the label boundaries drift away from the midpoints that multi-Otsu and k-means find.
    """
    w = params.log_weights.exp().unsqueeze(-1)  # (B, K, 1)
    pooled = (w * params.variances).sum(-2, keepdim=True) / w.sum(-2, keepdim=True)
    return GMMParams(params.log_weights, params.means, pooled.expand_as(params.variances))


def kmeans_plus_plus(
    x: torch.Tensor, n_components: int, generator: torch.Generator, n_local_trials: int = 1
) -> torch.Tensor:
    """Indices ``(B, K)`` of k-means++ seeds, chosen without gradient from a seeded generator.

    The seeds are data points (so the means they give stay differentiable in ``x``);
    the first is drawn uniformly and each next one with probability proportional to
    the squared distance to the nearest seed so far (Arthur & Vassilvitskii 2007).
    """
    b, n, _ = x.shape
    xd = x.detach()
    idx = torch.empty(b, n_components, dtype=torch.long, device=x.device)
    first = torch.randint(n, (b,), generator=generator, device="cpu").to(x.device)
    idx[:, 0] = first
    rows = torch.arange(b, device=x.device)
    closest = ((xd - xd[rows, first].unsqueeze(1)) ** 2).sum(-1)  # (B, N)
    for k in range(1, n_components):
        probs = closest.clamp(min=0).double().cpu()
        total = probs.sum(-1, keepdim=True)
        # A constant sample (all distances 0) falls back to uniform choice.
        probs = torch.where(total > 0, probs / total.clamp(min=1e-300), torch.full_like(probs, 1.0 / n))
        cand = torch.multinomial(probs, n_local_trials, generator=generator).to(x.device)
        best = None
        best_pot = None
        for t in range(n_local_trials):
            c = cand[:, t]
            dist = torch.minimum(closest, ((xd - xd[rows, c].unsqueeze(1)) ** 2).sum(-1))
            pot = dist.sum(-1)
            if best is None:
                best, best_pot, best_dist = c, pot, dist
            else:
                better = pot < best_pot
                best = torch.where(better, c, best)
                best_pot = torch.where(better, pot, best_pot)
                best_dist = torch.where(better.unsqueeze(-1), dist, best_dist)
        idx[:, k] = best
        closest = best_dist
    return idx


def kmeans_resp(
    x: torch.Tensor, n_components: int, generator: torch.Generator, n_iter: int = 10
) -> torch.Tensor:
    """Hard responsibilities ``(B, N, K)`` from k-means++ seeding and a few Lloyd steps.

    Plays the role of scikit-learn's ``init_params="kmeans"``: a robust starting
    point for EM. Computed without gradient: the following M-step on these
    responsibilities is where differentiability starts.
    """
    with torch.no_grad():
        xd = x.detach()
        seeds = kmeans_plus_plus(xd, n_components, generator, n_local_trials=2 + int(math.log(n_components)))
        rows = torch.arange(xd.shape[0], device=xd.device).unsqueeze(1)
        centers = xd[rows, seeds]  # (B, K, D)
        for _ in range(n_iter):
            d2 = torch.cdist(xd, centers) ** 2
            labels = d2.argmin(-1)
            onehot = torch.nn.functional.one_hot(labels, n_components).to(xd.dtype)
            counts = onehot.sum(1)
            new = (onehot.transpose(1, 2) @ xd) / counts.clamp(min=1).unsqueeze(-1)
            # An emptied cluster keeps its previous centre.
            centers = torch.where((counts > 0).unsqueeze(-1), new, centers)
        labels = (torch.cdist(xd, centers) ** 2).argmin(-1)
        return torch.nn.functional.one_hot(labels, n_components).to(x.dtype)


def fit_gmm(
    x: torch.Tensor,
    n_components: int,
    n_steps: int,
    *,
    reg_covar: float = 1e-6,
    generator: torch.Generator | None = None,
    init: GMMParams | None = None,
    clamp: torch.Tensor | None = None,
    point_weights: torch.Tensor | None = None,
    tied: bool = False,
) -> tuple[GMMParams, torch.Tensor, list[torch.Tensor]]:
    """Unrolled batch EM: returns final params, final log responsibilities, mean log-lik per step.

    Every operation is differentiable in ``x`` (except the choice of k-means seeds),
    so this is a layer: DEM backpropagates its losses through these ``n_steps``.
    ``tied``: all components share one (diagonal) variance, scikit-learn's "tied" M-step.
    """
    if x.ndim != 3:
        raise ValueError(f"fit_gmm expects (B, N, D) features, got shape {tuple(x.shape)}")
    if n_components < 1:
        raise ValueError(f"n_components must be >= 1, got {n_components}")
    if x.shape[1] < n_components:
        raise ValueError(f"{x.shape[1]} points cannot be split into {n_components} components")
    if init is None:
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        resp0 = kmeans_resp(x, n_components, gen)
        if clamp is not None:
            fixed = clamp >= 0
            onehot = torch.nn.functional.one_hot(clamp.clamp(min=0), n_components).to(x.dtype)
            resp0 = torch.where(fixed.unsqueeze(-1), onehot, resp0)
        params = m_step(x, resp0, reg_covar, point_weights)
    else:
        params = init
    if tied:
        params = tie_variances(params)
    history: list[torch.Tensor] = []
    log_resp, log_lik = e_step(x, params, clamp)
    for _ in range(n_steps):
        params = m_step(x, log_resp.exp(), reg_covar, point_weights)
        if tied:
            params = tie_variances(params)
        log_resp, log_lik = e_step(x, params, clamp)
        history.append(_mean(log_lik, point_weights))
    return params, log_resp, history


def _mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return values.mean(-1)
    return (values * weights).sum(-1) / weights.sum(-1).clamp(min=1e-12)


class OnlineGMM:
    """Online EM (Cappé & Moulines 2009) over mini-batches, for one mixture spanning many tiles.

    Keeps running averages of the normalised sufficient statistics
    ``s0 = E[r_k]``, ``s1 = E[r_k x]``, ``s2 = E[r_k x^2]``; each mini-batch moves them
    by a step ``rho_t = (t + t0) ** -alpha`` (``0.5 < alpha <= 1`` for convergence),
    then the M-step reads the parameters off them. Memory does not grow with the
    number of batches, which is what lets a mixture be fitted over a whole stack.
    """

    def __init__(
        self,
        n_components: int,
        *,
        reg_covar: float = 1e-6,
        alpha: float = 0.6,
        t0: float = 2.0,
        seed: int = 0,
    ) -> None:
        if not 0.5 < alpha <= 1.0:
            raise ValueError(f"alpha must lie in (0.5, 1], got {alpha}")
        self.n_components = n_components
        self.reg_covar = reg_covar
        self.alpha = alpha
        self.t0 = t0
        self.generator = torch.Generator().manual_seed(seed)
        self.params: GMMParams | None = None
        self.n_batches = 0
        self._stats: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def step_size(self, t: int) -> float:
        return float((t + self.t0) ** (-self.alpha))

    def partial_fit(self, x: torch.Tensor) -> GMMParams:
        """Update with a mini-batch ``(N, D)`` of points; returns the current parameters."""
        x = x.detach().reshape(1, -1, x.shape[-1])
        if self.params is None:
            resp = kmeans_resp(x, self.n_components, self.generator)
        else:
            log_resp, _ = e_step(x, self.params)
            resp = log_resp.exp()
        n = x.shape[1]
        batch = (resp.sum(1) / n, (resp.transpose(1, 2) @ x) / n, (resp.transpose(1, 2) @ (x * x)) / n)
        if self._stats is None:
            self._stats = batch
        else:
            rho = self.step_size(self.n_batches)
            self._stats = tuple((1 - rho) * s + rho * b for s, b in zip(self._stats, batch, strict=True))
        self.n_batches += 1
        s0, s1, s2 = self._stats
        self.params = params_from_statistics(s0 + _EPS_COUNT, s1, s2, self.reg_covar)
        return self.params
