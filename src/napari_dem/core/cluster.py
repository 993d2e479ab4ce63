"""Image clustering: a small convolutional auto-encoder plus one of three clustering objectives.

* ``dem``: DEM's losses on per-image latent codes. After pretraining, each image's nearest
  neighbours are mined once from the codes and an online-EM mixture (:class:`OnlineGMM`) is
  started on all codes. Per mini-batch, the codes of the images and of one neighbour each are
  standardised together (centred, one common scale), a diagonal GMM is fitted by a few
  unrolled, differentiable EM steps (:func:`fit_gmm`) started from the online mixture, and the
  online mixture takes the batch's statistics. Loss: ``recon_w * MSE + nll_w * NLL +
  entropy_w * H(resp) - balance_w * H(mean resp) - neighbour_w * log <resp_i, resp_j>``. The
  balance term (DEPICT's uniform prior) keeps the NLL from emptying components; neighbour
  agreement (as in SCAN) makes the codes group by content rather than by style. The final
  mixture is batch EM (100 steps) on all codes, started from the online mixture.
* ``depict``: softmax head on the embedding, trained with KL(q || p) against sharpened targets
  ``q ∝ p^2 / f`` (re-estimated every epoch) plus reconstruction; head initialised by k-means.
* ``nmm``: neural mixture model trained by batch-wise EM: the last layer outputs K
  log-densities ``log pi_k - ||z - mu_k||^2 / 2`` on the standardised code (a common
  normalisation), the forward pass gives the (detached) posterior (E-step) and a gradient step
  maximises the expected complete-data log-likelihood (M-step).

Pretraining (reconstruction only) takes the first ``pretrain_fraction`` of the steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .em import GMMParams, OnlineGMM, e_step, fit_gmm, standardization, standardize
from .intensity import to_grey
from .progress import CancelToken, ProgressFn, check_cancel, report

METHODS = ("dem", "depict", "nmm")


@dataclass
class ClusterResult:
    labels: np.ndarray  #: (N,) cluster ids 1..K
    confidence: np.ndarray  #: (N,) max responsibility / probability, in [0, 1]
    embedding: np.ndarray  #: (N, D) latent codes
    method: str = "dem"


# ----------------------------------------------------------------------------- images


def _to_grey(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim != 2 and not (img.ndim == 3 and img.shape[-1] in (3, 4)):
        raise ValueError(f"each image must be 2D (or RGB), got shape {img.shape}")
    return to_grey(img)


def prepare_images(stack: np.ndarray | list[np.ndarray], size: int = 28) -> tuple[np.ndarray, list[str]]:
    """Grey, percentile-normalised ``(N, 1, size, size)`` float32 images, and notes."""
    from skimage.transform import resize

    notes: list[str] = []
    if isinstance(stack, np.ndarray):
        if stack.size == 0 or stack.shape[0] == 0:
            raise ValueError("the image stack is empty")
        images = list(stack)
    else:
        images = list(stack)
    if len(images) == 0:
        raise ValueError("the image stack is empty")
    greys = [_to_grey(im) for im in images]
    shapes = {g.shape for g in greys}
    if len(shapes) > 1:
        notes.append(f"images have {len(shapes)} different sizes; all resized to {size}x{size}")
    elif greys[0].shape != (size, size):
        h, w = greys[0].shape
        notes.append(f"images of {h}x{w} resized to {size}x{size}")
    out = np.empty((len(greys), 1, size, size), np.float32)
    for i, g in enumerate(greys):
        if not np.all(np.isfinite(g)):
            raise ValueError(f"image {i} contains NaN or infinite values")
        lo, hi = np.percentile(g, (0.5, 99.5))
        g = np.clip((g - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(g)
        if g.shape != (size, size):
            g = resize(g, (size, size), anti_aliasing=g.shape[0] > size or g.shape[1] > size)
        out[i, 0] = g
    return out, notes


# ----------------------------------------------------------------------------- network


def _block(c_in: int, c_out: int, k: int, transpose: bool = False) -> list[nn.Module]:
    """A stride-2 (transposed) convolution, batch norm, leaky ReLU."""
    conv = nn.ConvTranspose2d if transpose else nn.Conv2d
    return [conv(c_in, c_out, k, 2, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.1)]


class ConvAE(nn.Module):
    """Three stride-2 convolutions -> linear to a ``latent_dim`` code; the decoder mirrors it.

    Batch normalisation and leaky ReLUs: with plain ReLUs the MNIST auto-encoder died within a
    few hundred steps (every decoder unit off, reconstruction = the mean image, codes useless).
    """

    def __init__(self, size: int = 28, latent_dim: int = 10, width: int = 16, nuisance_dim: int = 0) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        latent_dim = latent_dim + nuisance_dim
        c = (width, 2 * width, 4 * width)
        self.size = size
        self.enc = nn.Sequential(*_block(1, c[0], 4), *_block(c[0], c[1], 4), *_block(c[1], c[2], 3))
        with torch.no_grad():
            shape = self.enc(torch.zeros(2, 1, size, size)).shape
        self.feat_shape = tuple(shape[1:])
        n = int(np.prod(self.feat_shape))
        self.to_latent = nn.Linear(n, latent_dim)
        self.from_latent = nn.Linear(latent_dim, n)
        self.dec = nn.Sequential(
            *_block(c[2], c[1], 3, transpose=True),
            *_block(c[1], c[0], 4, transpose=True),
            nn.ConvTranspose2d(c[0], 1, 4, 2, 1),
        )

    def encode_full(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_latent(self.enc(x).flatten(1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The cluster code: the first ``latent_dim`` entries (the rest are nuisance: pose, size)."""
        return self.encode_full(x)[:, : self.latent_dim]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.from_latent(z), 0.1).view(-1, *self.feat_shape)
        y = self.dec(h)
        if y.shape[-1] != self.size:
            y = F.interpolate(y, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return torch.sigmoid(y)


def _standardize(z: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Codes standardised by ``stats`` (mean, scale) from :func:`standardization`, or by their own."""
    if stats is None:
        return standardize(z)
    mean, scale = stats
    return (z - mean) / scale


def _seeded_init(model: ConvAE, gen: torch.Generator) -> ConvAE:
    """Draw ``model``'s initial weights again from ``gen``, as torch's default init does from the
    global generator (same layers, same order, same formulas), without seeding torch globally.

    The constructor's shape probe (a forward pass of zeros) has moved the batch-norm running
    statistics with the old weights: they are reset and the probe is run again.
    """
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.kaiming_uniform_(layer.weight, a=5**0.5, generator=gen)
            if layer.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(layer.weight)
                bound = 1 / fan_in**0.5 if fan_in > 0 else 0.0
                nn.init.uniform_(layer.bias, -bound, bound, generator=gen)
        elif isinstance(layer, nn.BatchNorm2d):
            layer.reset_running_stats()
    with torch.no_grad():
        model.enc(torch.zeros(2, 1, model.size, model.size))
    return model


def _affine(x: torch.Tensor, gen: torch.Generator, shift: float, scale: float) -> torch.Tensor:
    """Random translation (up to ``shift`` pixels) and zoom (``1 +- scale``), zero padding."""
    n, _, h, _ = x.shape
    s = 1.0 + (torch.rand(n, generator=gen) * 2 - 1) * scale
    t = (torch.rand(n, 2, generator=gen) * 2 - 1) * (2.0 * shift / h)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = s
    theta[:, 1, 1] = s
    theta[:, :, 2] = t
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


def _augment(x: torch.Tensor, gen: torch.Generator, shift: int = 2) -> torch.Tensor:
    """Random translations of up to ``shift`` pixels (zero padding)."""
    if shift <= 0:
        return x
    n, _, h, w = x.shape
    pad = F.pad(x, (shift, shift, shift, shift))
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    rows = dy[:, None] + torch.arange(h)[None, :]  # (n, h)
    cols = dx[:, None] + torch.arange(w)[None, :]  # (n, w)
    idx_n = torch.arange(n)[:, None, None]
    return pad[idx_n, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


# ----------------------------------------------------------------------------- training


@dataclass
class ClusterSettings:
    pretrain_fraction: float = 0.5
    lr: float = 1e-3
    latent_dim: int = 10
    width: int = 16
    shift: int = 2  #: augmentation: random translation in pixels
    view_shift: float = 0.0  #: invariance views: random translation (px); 0 = no invariance term
    view_scale: float = 0.0  #: invariance views: random zoom 1 +- view_scale
    invariance_weight: float = 10.0  #: pulls the cluster codes of two random views together
    nuisance_dim: int = 4  #: extra latent dims for the decoder only (pose, size), used with views
    recon_weight: float = 100.0
    nll_weight: float = 0.05
    entropy_weight: float = 0.05
    balance_weight: float = 200.0  #: dem: - H(mean responsibility), DEPICT's uniform prior
    neighbour_weight: float = 100.0  #: dem: - log P(image and a near neighbour share a component)
    neighbours: int = 10  #: dem: nearest neighbours per image, mined once from the pretrained codes
    em_steps: int = 3  #: unrolled EM steps per mini-batch (dem), started from the online mixture
    cluster_weight: float = 1.0  #: KL (depict) / expected NLL (nmm)
    reg_covar: float = 1e-3


def _embed(model: ConvAE, x: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """Codes of all images, batch norm in inference mode (its running statistics untouched)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        z = torch.cat([model.encode(x[i : i + batch]) for i in range(0, len(x), batch)])
    model.train(was_training)
    return z


def _neighbours(z: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Indices ``(N, k)`` of each code's ``k`` nearest other codes (Euclidean), in chunks."""
    k = min(k, len(z) - 1)
    out = []
    for i in range(0, len(z), chunk):
        d = torch.cdist(z[i : i + chunk], z)
        d[torch.arange(d.shape[0]), torch.arange(i, i + d.shape[0])] = float("inf")
        out.append(d.topk(k, largest=False).indices)
    return torch.cat(out)


def _final_gmm(z: torch.Tensor, k: int, gen: torch.Generator, reg: float, init: GMMParams | None = None):
    zs = _standardize(z)
    params, log_resp, _ = fit_gmm(zs[None], k, 100, reg_covar=reg, generator=gen, init=init)
    return params, log_resp[0].exp()


def _dem_loss(
    model: ConvAE,
    z: torch.Tensor,
    x_all: torch.Tensor,
    idx: torch.Tensor,
    neighbours: torch.Tensor,
    online: OnlineGMM,
    gen: torch.Generator,
    s: ClusterSettings,
    dev: torch.device,
) -> torch.Tensor:
    """DEM's clustering losses on a mini-batch of codes ``z`` (images ``idx``).

    The batch codes and those of one random near neighbour per image are standardised together;
    ``em_steps`` unrolled EM steps, started from the online mixture (so components keep their
    identity from batch to batch), fit the batch; the online mixture then takes the batch's
    sufficient statistics (online EM with a decaying step). Loss: NLL + entropy of each
    responsibility - entropy of the mean responsibility + neighbour disagreement.
    """
    pick = torch.randint(0, neighbours.shape[1], (len(idx),), generator=gen)
    xn = _augment(x_all[neighbours[idx, pick]].to(dev), gen, s.shift)
    both = _standardize(torch.cat([z, model.encode(xn)]))
    za, zn = both[: len(z)], both[len(z) :]
    init = online.params.to(dev)
    params, _, _ = fit_gmm(za[None], online.n_components, s.em_steps, reg_covar=s.reg_covar, init=init)
    log_ra, log_lik = e_step(za[None], params)
    log_rn, _ = e_step(zn[None], params)
    online.partial_fit(za.detach().cpu())
    ra, rn = log_ra[0].exp(), log_rn[0].exp()
    nll = -log_lik.mean() / za.shape[-1]
    ent = -(ra * log_ra[0]).sum(-1).mean()
    mean_r = ra.mean(0)
    bal = -(mean_r * torch.log(mean_r + 1e-12)).sum()
    agree = -torch.log((ra * rn).sum(1) + 1e-8).mean()
    return s.nll_weight * nll + s.entropy_weight * ent - s.balance_weight * bal + s.neighbour_weight * agree


def cluster_images(
    images: np.ndarray,
    n_clusters: int,
    method: str = "dem",
    steps: int = 300,
    seed: int = 0,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    settings: ClusterSettings | None = None,
) -> ClusterResult:
    """Cluster ``(N, 1, S, S)`` images (from :func:`prepare_images`) into ``n_clusters`` groups."""
    s = settings or ClusterSettings()
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"expected a non-empty (N, 1, S, S) image array, got shape {images.shape}")
    n = images.shape[0]
    if n_clusters < 2:
        raise ValueError(f"the number of clusters must be >= 2, got {n_clusters}")
    if n_clusters > n:
        raise ValueError(f"cannot split {n} images into {n_clusters} clusters (K > number of images)")
    if not np.all(np.isfinite(images)):
        raise ValueError("the images contain NaN or infinite values")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")

    gen = torch.Generator().manual_seed(seed)
    dev = torch.device(device)
    x_all = torch.as_tensor(images, dtype=torch.float32)
    use_views = s.view_shift > 0 or s.view_scale > 0
    model = ConvAE(images.shape[-1], s.latent_dim, s.width, s.nuisance_dim if use_views else 0)
    model = _seeded_init(model, torch.Generator().manual_seed(seed)).to(dev)
    k = n_clusters
    # clustering heads (depict: linear softmax; nmm: centres + log priors)
    head_w = nn.Parameter(torch.zeros(k, s.latent_dim, device=dev))
    head_b = nn.Parameter(torch.zeros(k, device=dev))
    opt = torch.optim.Adam(model.parameters(), lr=s.lr)
    bs = min(batch_size, n)
    n_pre = max(1, round(steps * s.pretrain_fraction))
    steps_per_epoch = max(1, n // bs)
    perm = torch.randperm(n, generator=gen)
    pos = 0
    targets: torch.Tensor | None = None
    stats: tuple[torch.Tensor, torch.Tensor] | None = None
    neighbours: torch.Tensor | None = None
    online: OnlineGMM | None = None

    def next_batch() -> torch.Tensor:
        nonlocal perm, pos
        if pos + bs > n:
            perm = torch.randperm(n, generator=gen)
            pos = 0
        idx = perm[pos : pos + bs]
        pos += bs
        return idx

    def refresh(z: torch.Tensor | None = None) -> None:
        """Per-epoch quantities from the codes ``z`` (embedded now if not given): normalisation
        stats; DEPICT targets."""
        nonlocal targets, stats
        if z is None:
            z = _embed(model, x_all.to(dev))
        stats = standardization(z)
        if method == "depict":
            p = F.softmax(_standardize(z, stats) @ head_w.T + head_b, dim=1)
            f = p.sum(0, keepdim=True)
            q = p.pow(2) / f
            targets = (q / q.sum(1, keepdim=True)).detach()

    for step in range(1, steps + 1):
        check_cancel(cancel)
        codes = None  # this step's embedding of all images, when one was needed
        if step == n_pre + 1 and method == "dem":
            # mine neighbours in the pretrained code space; start the online mixture on all codes
            z = _standardize(_embed(model, x_all.to(dev)))
            neighbours = _neighbours(z, s.neighbours).cpu()
            online = OnlineGMM(k, reg_covar=s.reg_covar, seed=seed)
            online.partial_fit(z.cpu())
        if step == n_pre + 1 and method in ("depict", "nmm"):
            # initialise the head from the pretrained embedding (k-means)
            codes = _embed(model, x_all.to(dev))
            z = _standardize(codes)
            params, resp = _final_gmm(z, k, gen, s.reg_covar)
            mu = params.means[0].detach()
            with torch.no_grad():
                if method == "depict":
                    head_w.copy_(2.0 * mu)
                    head_b.copy_(-(mu * mu).sum(1))
                else:
                    head_w.copy_(mu)
                    head_b.copy_(params.log_weights[0].detach())
            opt = torch.optim.Adam([*model.parameters(), head_w, head_b], lr=s.lr)
        if step > n_pre and method in ("depict", "nmm") and (step - n_pre - 1) % steps_per_epoch == 0:
            refresh(codes)
        idx = next_batch()
        xb = x_all[idx].to(dev)
        if use_views:
            xa = _affine(xb, gen, s.view_shift, s.view_scale)
            xv = _affine(xb, gen, s.view_shift, s.view_scale)
            za_full = model.encode_full(xa)
            z = za_full[:, : s.latent_dim]
            zv = model.encode(xv)
            recon = F.mse_loss(model.decode(za_full), xa)
            both = _standardize(torch.cat([z, zv]))
            inv = F.mse_loss(both[: len(z)], both[len(z) :])
            loss = s.recon_weight * recon + s.invariance_weight * inv
        else:
            xin = _augment(xb, gen, s.shift)
            z = model.encode(xin)
            recon = F.mse_loss(model.decode(z), xb)
            loss = s.recon_weight * recon
        if step > n_pre:
            if method == "dem":
                loss = loss + _dem_loss(model, z, x_all, idx, neighbours, online, gen, s, dev)
            elif method == "depict":
                zs = _standardize(z, stats)
                log_p = F.log_softmax(zs @ head_w.T + head_b, dim=1)
                q = targets[idx].to(dev)
                kl = (q * (torch.log(q + 1e-12) - log_p)).sum(1).mean()
                loss = loss + s.cluster_weight * kl
            else:  # nmm
                zs = _standardize(z, stats)
                log_dens = F.log_softmax(head_b, 0) - 0.5 * ((zs[:, None, :] - head_w[None]) ** 2).sum(-1)
                with torch.no_grad():
                    r = F.softmax(log_dens, dim=1)  # E-step
                ecll = -(r * log_dens).sum(1).mean() / zs.shape[-1]  # M-step objective
                loss = loss + s.cluster_weight * ecll
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        report(progress, step, steps, f"{method}: training")

    model.eval()
    z = _embed(model, x_all.to(dev))
    if method == "dem":
        _, resp = _final_gmm(z, k, gen, s.reg_covar, None if online is None else online.params)
    elif method == "depict":
        zs = _standardize(z, stats)
        if steps > n_pre:
            resp = F.softmax(zs @ head_w.T + head_b, dim=1)
        else:
            _, resp = _final_gmm(z, k, gen, s.reg_covar)
    else:
        if steps > n_pre:
            zs = _standardize(z, stats)
            log_dens = F.log_softmax(head_b, 0) - 0.5 * ((zs[:, None, :] - head_w[None]) ** 2).sum(-1)
            resp = F.softmax(log_dens, dim=1)
        else:
            _, resp = _final_gmm(z, k, gen, s.reg_covar)
    resp = resp.detach().cpu()
    conf, lab = resp.max(1)
    return ClusterResult(
        labels=(lab.numpy() + 1).astype(np.int64),
        confidence=conf.numpy().clip(0, 1).astype(np.float64),
        embedding=z.cpu().numpy(),
        method=method,
    )
