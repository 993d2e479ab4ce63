"""Default settings on image families outside the panel: what a user's own image may look like.

Why: the panel (bench_panel.py) fixes 16 cases, and the rules of the default run were
developed on it and on its development seeds; an image from elsewhere should not be
judged by those. These families were drawn up after the rules, from what microscopists
bring: sparse or few objects, one or two cells in view, objects far larger than the
model's context, nuclei at two brightness levels, rod-shaped bacteria, sub-resolution
spots, dark cells in phase-contrast-like halos, 16-bit data with a camera offset or a
narrow range, hot pixels, a DAPI stain shown as RGB, volumes dimmer with depth, two large
cells in a volume, an H&E stain with nuclei of two sizes, glandular H&E whose epithelium
is as dark as its nuclei, nuclei with dark nucleoli and bright chromocentres (2D and 3D).
Each case has ground truth; every case is an objects case, scored like the panel (fg IoU, F1@0.5),
beside Otsu on the image smoothed at sigma 1 px with the polarity given (an oracle: DEM
gets none) and the same instance step as DEM (``_common.watershed``). Seeds 9900-9999
(never used in training). Families the default gets wrong are listed as such in
docs/benchmarks.md, not left out.

Run: ``OMP_NUM_THREADS=2 python benchmarks/bench_families.py`` (about 2 minutes on 2 cores).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import disk, ellipse

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import otsu_smoothed_fg, scores, table, timed, watershed
from napari_dem.api import segment_image
from napari_dem.core.intensity import to_grey
from napari_dem.data.families import he_glands, nuclei_with_nucleoli, objects_image, stain_rgb

#: (name, family, image, truth instances, axes, objects darker than their surround)
Case = tuple[str, str, np.ndarray, np.ndarray, str, bool]


def _render(
    mask: np.ndarray, inside: float, outside: float, blur: float, noise: float, seed: int
) -> np.ndarray:
    """A float32 image of ``mask`` (0 = background) with textured objects, blurred, noisy."""
    rng = np.random.default_rng(seed)
    grain = ndi.gaussian_filter(rng.normal(size=mask.shape), 1.5)
    clean = outside + (inside - outside) * (mask > 0) * (1 + 0.2 * grain / grain.std())
    return (ndi.gaussian_filter(clean, blur) + rng.normal(0, noise, mask.shape)).astype(np.float32)


def _discs(shape: tuple[int, int], centres, radius: float) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.int32)
    for i, c in enumerate(centres):
        mask[disk(c, radius, shape=shape)] = i + 1
    return mask


def _ellipsoids(shape: tuple[int, int, int], centres, radii: tuple[float, float, float]) -> np.ndarray:
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    mask = np.zeros(shape, dtype=np.int32)
    for i, c in enumerate(centres):
        inside = sum(((g - m) / r) ** 2 for g, m, r in zip((z, y, x), c, radii, strict=True)) <= 1
        mask[inside] = i + 1
    return mask


def _scatter(
    shape, n: int, draw: Callable[[np.random.Generator, np.ndarray], tuple], seed: int
) -> np.ndarray:
    """Up to ``n`` non-overlapping shapes (``draw(rng, centre)`` -> pixel indices)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, dtype=np.int32)
    k = 0
    for _ in range(n):
        idx = draw(rng, rng.uniform(8, np.array(shape) - 8))
        if not (mask[idx] > 0).any():
            k += 1
            mask[idx] = k
    return mask


def _he_mixed(shape: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An H&E stain (YXC uint8) by Beer-Lambert optical densities: clusters of epithelial
    nuclei (ellipses 12-24 px across, pale to dark haematoxylin, chromatin grain) among
    lymphocytes (6-9 px, dark), on eosin of patchy density; the nuclei as instances."""
    rng = np.random.default_rng(seed)
    truth = np.zeros(shape, dtype=np.int32)
    haematoxylin = np.zeros(shape)
    centres = [c + rng.normal(0, 28, (12, 2)) for c in rng.uniform(40, np.array(shape) - 40, (8, 2))]
    lymphocytes = rng.uniform(10, np.array(shape) - 10, (40, 2))
    for c, small in [(c, False) for c in np.concatenate(centres)] + [(c, True) for c in lymphocytes]:
        radii = rng.uniform(3, 4.5, 2) if small else rng.uniform(6, 12, 2)
        rr, cc = ellipse(c[0], c[1], *radii, shape=shape, rotation=rng.uniform(0, np.pi))
        free = truth[rr, cc] == 0
        if free.size == 0 or free.mean() < 0.7:
            continue
        truth[rr[free], cc[free]] = truth.max() + 1
        haematoxylin[rr[free], cc[free]] = rng.uniform(0.9, 1.2) if small else rng.uniform(0.45, 1.0)
    grain = 1 + 0.3 * ndi.gaussian_filter(rng.normal(size=shape), 1.0) / 0.28
    h = ndi.gaussian_filter(haematoxylin * grain, 0.7)
    eosin = 0.6 + 0.4 * (ndi.gaussian_filter(rng.normal(size=shape), 8) > 0.1)
    eosin *= 1 + 0.25 * ndi.gaussian_filter(rng.normal(size=shape), 1.5) / 0.1
    tissue = ndi.gaussian_filter(rng.normal(size=shape), 20) > -0.5
    e = np.where(tissue, eosin, 0.05) * (1 - 0.5 * np.clip(h, 0, 1))
    return stain_rgb(h, e, rng), truth


def _case(name: str, family: str, image, truth, axes: str = "YX", dark: bool = False) -> Case:
    return name, family, image, truth, axes, dark


def cases() -> Iterator[Case]:
    for s in range(2):
        seed = 9900 + s
        img, truth = objects_image((256, 256), coverage=0.03, seed=seed)
        yield _case(f"sparse-{s}", "sparse objects (3 % cover)", img, truth)
        img, truth = objects_image((256, 256), noise=0.15, seed=seed)
        yield _case(f"noisy-{s}", "very noisy (read noise 0.15)", img, truth)
        img, truth = objects_image((256, 256), polarity="dark", illumination=0.9, seed=seed)
        yield _case(f"dark-uneven-{s}", "dark objects, strong uneven light", img, truth, dark=True)
        img, truth = objects_image((256, 256), seed=seed)
        hot = img.copy()
        hot[tuple(np.random.default_rng(seed).integers(0, 256, (2, 30)))] = 4 * img.max()
        yield _case(f"hot-pixels-{s}", "30 hot pixels at 4x the maximum", hot, truth)
        offset = (100 + 3000 * img).astype(np.uint16)
        yield _case(f"uint16-{s}", "uint16, offset 100, range 3000", offset, truth)
        narrow = (100 + 30 * img).round().astype(np.uint16)
        yield _case(f"narrow16-{s}", "uint16, 30 grey levels", narrow, truth)
        rgb = np.zeros((*img.shape, 3), np.uint8)
        rgb[..., 2] = (255 * img / img.max()).astype(np.uint8)
        yield _case(f"dapi-rgb-{s}", "DAPI shown as RGB (blue only)", rgb, truth, "YXC")
        halo = ndi.binary_dilation(truth > 0, iterations=3) & (truth == 0)
        rng = np.random.default_rng(seed)
        phase = 0.5 - 0.3 * ndi.gaussian_filter((truth > 0).astype(float), 1)
        phase += 0.3 * ndi.gaussian_filter(halo.astype(float), 1.5) + rng.normal(0, 0.04, truth.shape)
        yield _case(f"phase-{s}", "dark cells with bright halos", phase.astype(np.float32), truth, dark=True)
        _, truth = objects_image((256, 256), seed=9950 + s)
        level = np.concatenate([[0.0], rng.choice([0.15, 0.8], truth.max())])
        two = ndi.gaussian_filter(level[truth], 1) + 0.05 + rng.normal(0, 0.015, truth.shape)
        yield _case(f"dim-bright-{s}", "nuclei at two brightness levels", two.astype(np.float32), truth)
        few = _discs((256, 256), [(80, 80), (170, 160)][: s + 1], 35)
        yield _case(f"few-{s}", "one or two cells in view", _render(few, 0.7, 0.1, 1.5, 0.05, seed), few)
        dark_few = _render(few, 0.25, 0.75, 1.5, 0.05, seed)
        yield _case(f"few-dark-{s}", "one or two dark cells", dark_few, few, dark=True)
        huge = _discs((768, 768), [(200, 200), (520, 300), (300, 560)], 110 - 15 * s)
        yield _case(
            f"huge-{s}", "three cells 190-220 px across", _render(huge, 0.7, 0.1, 2, 0.05, seed), huge
        )

        def rod(rng, c):
            length = rng.uniform(7, 12)
            return ellipse(c[0], c[1], 2.5, length, shape=(256, 256), rotation=rng.uniform(0, np.pi))

        rods = _scatter((256, 256), 60, rod, seed)
        bacteria = _render(rods, 0.8, 0.1, 0.8, 0.05, seed)
        yield _case(f"rods-{s}", "rod-shaped bacteria (5 x 14-24 px)", bacteria, rods)

        def spot(rng, c):
            return disk(c, rng.uniform(1.5, 2.5), shape=(256, 256))

        spots = _scatter((256, 256), 120, spot, seed)
        yield _case(f"spots-{s}", "spots 3-5 px across", _render(spots, 0.6, 0.1, 0.7, 0.05, seed), spots)
        cells = _ellipsoids((40, 160, 160), [(20, 50, 50), (20, 110, 110)], (12, 30, 30))
        two_cells = _render(cells, 0.7, 0.1, 1.5, 0.05, seed)
        yield _case(f"cells3d-{s}", "3D: two cells 60 px across", two_cells, cells, "ZYX")
        vol, truth = objects_image((40, 160, 160), radius=(12, 16), coverage=0.25, seed=9920 + s)
        dimmer = (vol * (1 - 0.5 * np.linspace(0, 1, vol.shape[0])[:, None, None])).astype(np.float32)
        yield _case(f"deep-{s}", "3D nuclei, half as bright at the bottom", dimmer, truth, "ZYX")
        he, truth = _he_mixed((512, 512), seed)
        yield _case(f"he-mixed-{s}", "H&E: nucleus clusters and lymphocytes", he, truth, "YXC", dark=True)
        glands, truth = he_glands(seed=9980 + s)
        yield _case(f"he-glands-{s}", "H&E glands: nuclei in stained cytoplasm", glands, truth, "YXC", True)
        nuclei, truth = nuclei_with_nucleoli((512, 512), seed=9930 + s)
        yield _case(f"nucleoli-{s}", "nuclei with nucleoli and bright spots", nuclei, truth)
        vol, truth = nuclei_with_nucleoli((48, 192, 192), radius=(14.0, 18.0), seed=9940 + s)
        yield _case(f"nucleoli3d-{s}", "3D: nuclei with nucleoli and bright spots", vol, truth, "ZYX")


def otsu_fg(image: np.ndarray, axes: str, dark: bool) -> np.ndarray:
    """Otsu on the (grey) image smoothed at sigma 1 px, with the right polarity."""
    grey = to_grey(image) if "C" in axes else image.astype(np.float64)
    return otsu_smoothed_fg(-grey if dark else grey)


def main() -> None:
    rows = []
    for name, family, image, truth, axes, dark in cases():
        out, seconds = timed(
            lambda image=image, axes=axes: segment_image(image, axes, device="cpu", instances=True)
        )
        d = out.semantic.decision
        decided = f"{d.task}, K={d.n_clusters}" + (f", {d.objects}" if d.objects else "")
        dem_iou, dem_f1 = scores(out.labels, truth)
        grey = to_grey(image) if "C" in axes else image.astype(np.float64)
        otsu_iou, otsu_f1 = scores(watershed(otsu_fg(image, axes, dark), grey), truth)
        rows.append(
            [
                name,
                family,
                decided,
                dem_iou,
                dem_f1,
                otsu_iou,
                otsu_f1,
                round(dem_f1 - otsu_f1, 3),
                f"{seconds:.1f}",
            ]
        )
        print(" | ".join(str(v) for v in rows[-1]), flush=True)
    header = [
        "case",
        "family",
        "DEM decided",
        "DEM fg IoU",
        "DEM F1",
        "Otsu fg IoU",
        "Otsu F1",
        "F1 gap",
        "DEM s",
    ]
    print()
    print(table(header, rows))
    gaps = np.array([r[7] for r in rows])
    below = int((gaps < -0.01).sum())
    print(f"\nDEM F1 - Otsu F1: mean {gaps.mean():+.3f}; below by more than 0.01 on {below} of {len(rows)}")


if __name__ == "__main__":
    main()
