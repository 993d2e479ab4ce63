"""``joint``: 2D/3D intra-inter contrastive clustering (after "Joint Self-Supervised
Image-Volume Representation Learning with Intra-Inter Contrastive Clustering", AAAI 2023).

One 2D encoder serves images and the Z-slices of volumes:

* **intra (2D)**: contrastive clustering on images and on slices of volumes: instance contrast
  (NT-Xent on a projection of two views) plus cluster contrast (NT-Xent between the columns of
  the two views' cluster-probability matrices), with the shared view terms;
* **volume embedding**: the slice embeddings of a volume (with a learned position per slice)
  are pooled by attention into one embedding, which goes through the same heads as an image;
* **inter (3D)**: the two views of a volume (independent flips and small turns) must agree on the
  cluster and on the instance (the same contrastive clustering, on volume embeddings);
* **masked-slice-embedding prediction**: a fraction of a volume's slice embeddings is hidden, and
  a small MLP predicts each hidden one from the attention-pooled rest and its position.

So images and volumes are clustered in one space, and a collection may mix them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import AttentionPool, augment
from .base import ClusterSettings, Method


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's normalised-temperature cross-entropy: row i of ``a`` matches row i of ``b``."""
    z = F.normalize(torch.cat([a, b]), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(len(z), dtype=torch.bool, device=z.device), float("-inf"))
    n = len(a)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, target)


class Joint(Method):
    name = "joint"
    supports_mixed = True
    wide_views = True  #: its instance contrast needs them (ClusterSettings.wide_zoom)

    def __init__(self, k: int, dims: int, s: ClusterSettings) -> None:
        super().__init__(k, 2, s)  # one 2D encoder for images and slices
        f = s.feat_dim
        self.pool = AttentionPool(f)
        self.project = nn.Sequential(nn.Linear(f, f), nn.ReLU(), nn.Linear(f, 64))
        self.head = nn.Linear(f, k)
        self.mask_token = nn.Parameter(torch.zeros(f))
        self.predict_slice = nn.Sequential(nn.Linear(2 * f, f), nn.ReLU(), nn.Linear(f, f))

    def slice_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, D, S, S)`` volumes -> ``(B, D, F)`` embeddings of their Z-slices."""
        b, _, d, h, w = x.shape
        return self.encoder(x.permute(0, 2, 1, 3, 4).reshape(b * d, 1, h, w)).view(b, d, -1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x) if x.ndim == 4 else self.pool(self.slice_embeddings(x))

    def logits_all(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h)

    def contrastive_clustering(self, ha: torch.Tensor, hb: torch.Tensor) -> torch.Tensor:
        la, lb = self.head(ha), self.head(hb)
        instance = nt_xent(self.project(ha), self.project(hb), self.s.temperature)
        clusters = nt_xent(F.softmax(la, 1).T, F.softmax(lb, 1).T, 1.0)
        return self.view_terms(la, lb) + instance + clusters

    def loss(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if x.ndim == 4:
            xa, xb = self.views(x, gen)
            h = self.encoder(torch.cat([xa, xb]))
            return self.contrastive_clustering(h[: len(x)], h[len(x) :])
        s = self.s
        b, d = x.shape[0], x.shape[2]
        # intra: random slices of each volume, as 2D images with 2D views
        pick = torch.randint(0, d, (b, s.slices_per_volume), generator=gen)
        slices = x[torch.arange(b)[:, None], :, pick].reshape(-1, 1, *x.shape[3:])
        sa, sb = self.views(slices, gen)
        hs = self.encoder(torch.cat([sa, sb]))
        intra = self.contrastive_clustering(hs[: len(slices)], hs[len(slices) :])
        # inter: two 3D views of each volume, slice embeddings pooled by attention
        va, vb = (augment(x, gen, **self.geometry(x)) for _ in range(2))
        emb = self.slice_embeddings(torch.cat([va, vb]))
        pooled = self.pool(emb)
        inter = self.contrastive_clustering(pooled[:b], pooled[b:])
        # masked-slice-embedding prediction on the first view
        target = emb[:b].detach()
        masked = torch.rand(b, d, generator=gen).to(x.device) < s.mask_fraction
        masked[:, 0] &= masked.sum(1) < d  # keep at least one slice visible
        context = self.pool(torch.where(masked[..., None], self.mask_token, emb[:b]), keep=~masked)
        query = torch.cat([context[:, None].expand(-1, d, -1), self.pool.pos[:d].expand(b, -1, -1)], -1)
        pred = self.predict_slice(query)
        mse = 1 - F.cosine_similarity(pred[masked], target[masked], dim=-1).mean() if masked.any() else 0.0
        return intra + inter + mse
