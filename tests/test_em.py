"""EM against textbook math: scikit-learn's GaussianMixture, monotone likelihood, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture

from napari_dem.core.em import (
    GMMParams,
    OnlineGMM,
    e_step,
    fit_gmm,
    kmeans_plus_plus,
    m_step,
)


def _blobs(n: int = 600, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 1.0, -2.0], [-3.0, 5.0, 2.0]])
    scales = np.array([[1.0, 0.5, 0.8], [0.6, 1.2, 0.4], [1.5, 0.7, 1.0]])
    lab = rng.integers(0, 3, n)
    return centres[lab] + rng.normal(size=(n, 3)) * scales[lab]


@pytest.mark.parametrize("n_iter", [1, 3, 10])
def test_em_steps_match_sklearn(n_iter: int) -> None:
    x = _blobs()
    rng = np.random.default_rng(1)
    means0 = x[rng.choice(len(x), 3, replace=False)]
    var0 = np.ones((3, 3))
    w0 = np.full(3, 1 / 3)
    reg = 1e-6
    gm = GaussianMixture(
        3,
        covariance_type="diag",
        max_iter=n_iter,
        tol=0.0,
        reg_covar=reg,
        weights_init=w0,
        means_init=means0,
        precisions_init=1 / var0,
        random_state=0,
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "did not converge" is expected for a fixed n_iter
        gm.fit(x)
    xt = torch.tensor(x, dtype=torch.float64).unsqueeze(0)
    params = GMMParams(
        torch.log(torch.tensor(w0)).unsqueeze(0),
        torch.tensor(means0).unsqueeze(0),
        torch.tensor(var0).unsqueeze(0),
    )
    for _ in range(n_iter):
        log_resp, _ = e_step(xt, params)
        params = m_step(xt, log_resp.exp(), reg)
    np.testing.assert_allclose(params.log_weights.exp()[0].numpy(), gm.weights_, atol=1e-4)
    np.testing.assert_allclose(params.means[0].numpy(), gm.means_, atol=1e-4)
    np.testing.assert_allclose(params.variances[0].numpy(), gm.covariances_, atol=1e-4)
    # The E-step's per-point log-likelihood is sklearn's score_samples.
    _, log_lik = e_step(xt, params)
    np.testing.assert_allclose(log_lik[0].numpy(), gm.score_samples(x), atol=1e-6)


@pytest.mark.parametrize("n_iter", [1, 5])
def test_tied_em_matches_sklearn_tied(n_iter: int) -> None:
    """The classes task's shared-variance mixture is scikit-learn's "tied" EM (1D: tied = diag)."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 0.3, 700), rng.normal(2, 1.2, 300), rng.normal(5, 0.5, 200)])[:, None]
    means0, var0, w0, reg = np.array([[-0.5], [1.5], [4.0]]), 1.0, np.full(3, 1 / 3), 1e-6
    gm = GaussianMixture(
        3, covariance_type="tied", max_iter=n_iter, tol=0.0, reg_covar=reg, weights_init=w0,
        means_init=means0, precisions_init=np.array([[1 / var0]]), random_state=0,
    )  # fmt: skip
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(x)
    w, mu = torch.log(torch.tensor(w0)).unsqueeze(0), torch.tensor(means0).unsqueeze(0)
    init = GMMParams(w, mu, torch.full((1, 3, 1), var0))
    params, _, _ = fit_gmm(torch.tensor(x).unsqueeze(0), 3, n_iter, reg_covar=reg, init=init, tied=True)
    np.testing.assert_allclose(params.log_weights.exp()[0].numpy(), gm.weights_, atol=1e-6)
    np.testing.assert_allclose(params.means[0].numpy(), gm.means_, atol=1e-6)
    shared = np.full(3, gm.covariances_[0, 0])
    np.testing.assert_allclose(params.variances[0, :, 0].numpy(), shared, rtol=1e-6)


def test_log_likelihood_never_decreases() -> None:
    x = torch.tensor(_blobs(800, seed=3), dtype=torch.float64).unsqueeze(0)
    _, _, history = fit_gmm(x, 3, 30, generator=torch.Generator().manual_seed(0))
    values = torch.stack(history).squeeze(-1).numpy()
    assert np.all(np.diff(values) >= -1e-9)
    assert values[-1] > values[0]


def test_batched_mixtures_are_independent() -> None:
    a = torch.tensor(_blobs(300, seed=4), dtype=torch.float64)
    b = torch.tensor(_blobs(300, seed=5), dtype=torch.float64) * 2 + 1
    gen = torch.Generator().manual_seed(0)
    p_ab, _, _ = fit_gmm(torch.stack([a, b]), 3, 5, generator=gen)
    gen = torch.Generator().manual_seed(0)
    p_a, _, _ = fit_gmm(a.unsqueeze(0), 3, 5, generator=gen)
    torch.testing.assert_close(p_ab.means[0], p_a.means[0])


def test_online_em_approaches_batch_solution() -> None:
    x = torch.tensor(_blobs(6000, seed=6), dtype=torch.float64)
    batch, _, _ = fit_gmm(x.unsqueeze(0), 3, 100, generator=torch.Generator().manual_seed(0))
    online = OnlineGMM(3, alpha=0.6, seed=0)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    errors = []
    for epoch in range(3):
        for chunk in x[perm].split(250):
            online.partial_fit(chunk)
        # Match components by nearest means, then compare.
        d = torch.cdist(online.params.means[0], batch.means[0])
        errors.append(float(d.min(1).values.max()))
        del epoch
    assert errors[-1] < 0.15
    assert errors[-1] <= errors[0] + 1e-9


def test_online_em_rejects_bad_step_exponent() -> None:
    with pytest.raises(ValueError, match="alpha"):
        OnlineGMM(3, alpha=0.4)


def test_gradcheck_through_unrolled_em() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 12, 2, dtype=torch.float64)
    x[0, :6] += 3.0
    gen_seed = 0

    def f(inp: torch.Tensor) -> torch.Tensor:
        params, log_resp, _ = fit_gmm(inp, 2, 3, generator=torch.Generator().manual_seed(gen_seed))
        return (log_resp.exp() * torch.arange(2, dtype=inp.dtype)).sum() + params.means.sum()

    assert torch.autograd.gradcheck(f, (x.requires_grad_(),), eps=1e-6, atol=1e-5)


def test_kmeans_plus_plus_is_deterministic_and_spread() -> None:
    x = torch.tensor(_blobs(500, seed=7)).unsqueeze(0)
    a = kmeans_plus_plus(x, 3, torch.Generator().manual_seed(3))
    b = kmeans_plus_plus(x, 3, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    seeds = x[0, a[0]]
    assert float(torch.pdist(seeds).min()) > 2.0  # one seed per well-separated blob


def test_clamped_points_keep_their_component() -> None:
    x = torch.tensor(_blobs(400, seed=8)).unsqueeze(0)
    clamp = torch.full((1, 400), -1)
    clamp[0, :5] = 2
    _, log_resp, _ = fit_gmm(x, 3, 5, clamp=clamp, generator=torch.Generator().manual_seed(0))
    assert torch.all(log_resp[0, :5].argmax(-1) == 2)
    torch.testing.assert_close(log_resp[0, :5].exp().sum(-1), torch.ones(5, dtype=x.dtype))


def test_too_few_points_is_an_error() -> None:
    with pytest.raises(ValueError, match="cannot be split"):
        fit_gmm(torch.randn(1, 2, 3), 3, 2)
