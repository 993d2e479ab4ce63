"""Speed of DEM inference on a 2048x2048 image against a per-pixel GMM, and how close to the CPU's peak.

Why: DEM replaces "cluster pixels on hand-made features" (scikit-learn's
GaussianMixture on intensity + Gaussian-smoothed copies) with "cluster pixels on
learned features"; it should not cost more than the classic route, and its
encoder (a few thousand FLOPs per pixel) should run at a reasonable fraction of
what the machine's float32 matmul reaches. Both methods run in this one process on
the same image, with the default number of threads.

Effective FLOP/s is ``encoder_flops_per_pixel * pixels / encoder seconds``, where
encoder seconds are the time spent inside ``model.encode`` only (not EM, not label
assignment, not I/O), measured by wrapping that method. Two rates are reported: on
the image's pixels ("useful") and on what the encoder actually computed ("executed":
the context blur on each tile with its halo, the convolutions on each tile's core
and their reach around it; the halo is recomputed so tiled latents equal untiled
ones). The CLI's row is the median of :data:`CLI_RUNS` fresh processes.

Run: ``python benchmarks/bench_speed.py`` with no other heavy process running
(about two minutes on 2 cores). Do not set OMP_NUM_THREADS for this one.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import model_fingerprint, smoothed_features, table, timed
from napari_dem.api import segment_image
from napari_dem.core.model import DEMModel, load_default_model
from napari_dem.core.networks import encoder_flops_per_pixel
from napari_dem.data.synthetic import synthetic_nuclei

SIDE = 2048
#: Fresh processes timed for the CLI's row; the median is reported.
CLI_RUNS = 3


def test_image() -> np.ndarray:
    """2048x2048 float32: a 512x512 synthetic nuclei image tiled 4x4.

    ``synthetic_nuclei`` at 2048x2048 would place ~4000 objects, each over the full
    grid, and take minutes; tiling gives the same content statistics.
    """
    tile, _ = synthetic_nuclei((512, 512), noise="medium", seed=7, dtype=np.float32)
    return np.tile(tile, (SIDE // 512, SIDE // 512))


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 FLOP/s of ``torch.matmul`` on two n x n matrices (2 n^3 FLOPs each)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)  # warm-up
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


class EncodeTimer:
    """Wraps ``model.encode`` to add up its wall time, the pixels its convolutions computed
    (a tile's core and their reach around it: ``Encoder.forward``'s ``keep``) and the FLOPs it
    executed (the blur on the whole tile, the convolutions on that crop)."""

    def __init__(self, model: DEMModel) -> None:
        self.inner: Callable[..., torch.Tensor] = model.encode
        self.radius = model.encoder.body_radius
        self.fpp = encoder_flops_per_pixel(model.encoder)
        self.context_fpp = encoder_flops_per_pixel(model.encoder, body=False)
        self.seconds = 0.0
        self.pixels = 0
        self.flops = 0
        model.encode = self  # type: ignore[method-assign]

    def __call__(self, x: torch.Tensor, keep: tuple[slice, ...] | None = None) -> torch.Tensor:
        t0 = time.perf_counter()
        z = self.inner(x, keep)
        self.seconds += time.perf_counter() - t0
        tile = x.shape[0] * math.prod(x.shape[2:])
        crop = tile
        if keep is not None:
            r = self.radius
            crop = x.shape[0] * math.prod(
                min(n, k.stop + r) - max(0, k.start - r) for k, n in zip(keep, x.shape[2:], strict=True)
            )
        self.pixels += crop
        self.flops += self.context_fpp * tile + (self.fpp - self.context_fpp) * crop
        return z


class EdgesTimer:
    """Adds up the wall time of the object-edge step (``DEMSegmenter._refine_edges``)."""

    def __init__(self) -> None:
        from napari_dem.core.segmenter import DEMSegmenter

        self.seconds = 0.0
        inner = DEMSegmenter._refine_edges

        def refine(segmenter: DEMSegmenter, *args: object) -> None:
            t0 = time.perf_counter()
            inner(segmenter, *args)
            self.seconds += time.perf_counter() - t0

        DEMSegmenter._refine_edges = refine  # type: ignore[method-assign]


def gmm(img: np.ndarray) -> tuple[float, float, float]:
    """(feature, fit, predict) seconds of GaussianMixture(3, diag) on 4 features per pixel."""
    from sklearn.mixture import GaussianMixture

    feats, s_feat = timed(lambda: smoothed_features(img))
    g = GaussianMixture(3, covariance_type="diag", random_state=0)
    _, s_fit = timed(lambda: g.fit(feats))
    _, s_pred = timed(lambda: g.predict(feats))
    return s_feat, s_fit, s_pred


def cli_default(img: np.ndarray) -> float:
    """Wall seconds of ``napari-dem segment IMG -o OUT`` with no option (a fresh process: the
    start-up, reading and writing the TIFFs included), as a user runs it: the median of
    :data:`CLI_RUNS` runs (one run of a shared machine took 15 s instead of 5 once)."""
    import subprocess
    import tempfile

    import tifffile

    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "img.tif", Path(tmp) / "labels.tif"
        tifffile.imwrite(src, img)
        cmd = [
            sys.executable,
            "-m",
            "napari_dem.cli",
            "segment",
            str(src),
            "-o",
            str(out),
            "-q",
            "--overwrite",
        ]
        runs = [
            timed(lambda: subprocess.run(cmd, check=True, capture_output=True))[1] for _ in range(CLI_RUNS)
        ]
        assert tifffile.imread(out).shape == img.shape
    return float(np.median(runs))


def main() -> None:
    img = test_image()
    mp = img.size / 1e6
    model = load_default_model(2, "cpu")
    segment_image(img[:256, :256], "YX", model=model, device="cpu")  # warm-up
    timer = EncodeTimer(model)
    out, s_dem = timed(lambda: segment_image(img, "YX", n_clusters=3, model=model, device="cpu"))
    assert out.labels.shape == img.shape
    edges = EdgesTimer()
    _, s_default = timed(lambda: segment_image(img, "YX"))
    _, s_classes = timed(lambda: segment_image(img, "YX", task="classes"))
    s_cli = cli_default(img)
    s_feat, s_fit, s_pred = gmm(img)
    s_gmm = s_feat + s_fit + s_pred
    peak = matmul_peak()
    fpp = encoder_flops_per_pixel(model.encoder)
    useful = fpp * img.size / timer.seconds
    executed = timer.flops / timer.seconds

    print(f"Image {SIDE}x{SIDE} float32 ({mp:.1f} MP), K=3, torch threads {torch.get_num_threads()}\n")
    print(f"Model: {model_fingerprint(2)}\n")
    rows = [
        ("DEM segment_image (semantic, K=3, cpu)", s_dem, mp / s_dem, "1.0x"),
        ("↳ of which encoder (model.encode)", timer.seconds, mp / timer.seconds, ""),
        ("DEM segment_image, default settings (K, task chosen)", s_default, mp / s_default, ""),
        ("↳ of which object edges (core/edges.py)", edges.seconds, mp / edges.seconds, ""),
        ("DEM segment_image, task classes given (no network)", s_classes, mp / s_classes, ""),
        (
            "napari-dem segment, default settings, new process",
            s_cli,
            mp / s_cli,
            f"GMM {s_gmm / s_cli:.1f}x slower",
        ),
        (
            "GaussianMixture(3, diag), 4 features: total",
            s_gmm,
            mp / s_gmm,
            f"{s_gmm / s_dem:.1f}x slower",
        ),
        ("↳ features (intensity + sigma 1, 2, 4)", s_feat, mp / s_feat, ""),
        ("↳ fit", s_fit, mp / s_fit, ""),
        ("↳ predict", s_pred, mp / s_pred, ""),
    ]
    print(table(("method", "s", "MP/s", "vs DEM"), rows))
    print()
    rows2 = [
        ("encoder FLOPs per pixel", f"{fpp:,}"),
        (
            "pixels through the convolutions incl. their reach / image pixels",
            f"{timer.pixels / img.size:.2f}",
        ),
        ("torch.matmul 2048x2048 float32, best of 5", f"{peak / 1e9:.1f} GFLOP/s"),
        ("DEM encoder, useful (image pixels)", f"{useful / 1e9:.1f} GFLOP/s = {useful / peak:.1%} of matmul"),
        (
            "DEM encoder, executed (blur on tiles with halos, convolutions on cores + reach)",
            f"{executed / 1e9:.1f} GFLOP/s = {executed / peak:.1%} of matmul",
        ),
        (
            "DEM whole segment_image, useful",
            f"{fpp * img.size / s_dem / 1e9:.1f} GFLOP/s = {fpp * img.size / s_dem / peak:.1%} of matmul",
        ),
    ]
    print(table(("quantity", "value"), rows2))


if __name__ == "__main__":
    main()
