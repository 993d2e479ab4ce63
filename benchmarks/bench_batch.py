"""Batch throughput (megapixels/s) and peak resident memory, one fresh process per configuration.

    python benchmarks/bench_batch.py                       # every row
    python benchmarks/bench_batch.py --frames 50 100       # only these stack lengths

Rows:
- a zarr stack of N frames of 1024x1024 uint16 (T Y X), segmented 2D frame by frame into
  a zarr with :func:`napari_dem.batch.segment_to_zarr` (one global mixture, labels written
  tile by tile); peak memory must not grow with N (issue target: 200 frames < 1.5 GB);
- a 3D volume Z x 512 x 512 uint16 of growing Z (3D model), the same way;
- a folder of 1024x1024 files, local threads versus a 2-worker ``LocalCluster`` on loopback
  (one task per file); for the cluster the peak is the largest worker's.

The inputs are generated once into ``benchmarks/_cache`` (one synthetic frame, rolled per frame).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CACHE = Path(__file__).parent / "_cache" / "batch"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _stack(n: int):
    import zarr

    path = CACHE / f"stack_{n}x1024x1024.zarr"
    if not path.exists():
        from napari_dem.data.synthetic import synthetic_nuclei

        base, _ = synthetic_nuclei((1024, 1024), seed=1)
        base = np.asarray(base, dtype=np.float64)
        base = (base - base.min()) / max(np.ptp(base), 1e-9) * 60000
        tmp = path.with_name("." + path.name + ".part")
        arr = zarr.open_array(
            str(tmp), mode="w", shape=(n, 1024, 1024), dtype=np.uint16, chunks=(1, 1024, 1024)
        )
        for t in range(n):
            arr[t] = np.roll(base, (5 * t, 11 * t), axis=(0, 1)).astype(np.uint16)
        tmp.rename(path)
    return path


def _volume(z: int):
    import zarr

    path = CACHE / f"volume_{z}x512x512.zarr"
    if not path.exists():
        from napari_dem.data.synthetic import synthetic_nuclei

        block, _ = synthetic_nuclei((32, 512, 512), noise="low", radius=(5.0, 9.0), seed=2)
        block = np.asarray(block, dtype=np.float64)
        block = (block - block.min()) / max(np.ptp(block), 1e-9) * 60000
        tmp = path.with_name("." + path.name + ".part")
        arr = zarr.open_array(str(tmp), mode="w", shape=(z, 512, 512), dtype=np.uint16, chunks=(16, 512, 512))
        for k in range(0, z, 32):
            arr[k : k + 32] = block[: min(32, z - k)].astype(np.uint16)
        tmp.rename(path)
    return path


def _files(n: int) -> Path:
    import tifffile

    from napari_dem.data.synthetic import synthetic_nuclei

    folder = CACHE / f"files_{n}"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = folder / f"f{i:03d}.tif"
        if not path.exists():
            img, _ = synthetic_nuclei((1024, 1024), seed=100 + i)
            tifffile.imwrite(path, np.asarray(img, dtype=np.float32))
    return folder


def run_one(kind: str, size: int, where: str) -> dict:
    """Runs in a fresh process: segment one configuration, return timings and peak memory."""
    import shutil
    import tempfile

    import torch

    from napari_dem.batch import BatchSettings, batch_segment, expand_inputs, segment_to_zarr
    from napari_dem.io import read_image

    out_dir = Path(tempfile.mkdtemp(prefix="bench_batch_", dir=CACHE))
    try:
        if kind in ("stack", "volume"):
            src = _stack(size) if kind == "stack" else _volume(size)
            data, _ = read_image(src)
            settings = BatchSettings(
                axes="TYX" if kind == "stack" else "ZYX", device="cpu", mode="2d" if kind == "stack" else "3d"
            )
            base_rss = _rss_mb()
            t0 = time.perf_counter()
            segment_to_zarr(data, out_dir / "labels.zarr", settings)
            seconds = time.perf_counter() - t0
            mpix = float(np.prod(data.shape)) / 1e6
            return {
                "seconds": seconds,
                "mpix": mpix,
                "rss_mb": _rss_mb(),
                "base_rss_mb": base_rss,
                "threads": torch.get_num_threads(),
            }
        inputs = expand_inputs([str(_files(size))])
        settings = BatchSettings(device="cpu")
        mpix = sum(float(np.prod(read_image(p)[0].shape)) for p in inputs) / 1e6
        if where == "local":
            base_rss = _rss_mb()
            t0 = time.perf_counter()
            summary = batch_segment(inputs, out_dir, settings)
            seconds = time.perf_counter() - t0
            rss = _rss_mb()
        else:
            from distributed import Client, LocalCluster

            cluster = LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
            )
            try:
                base_rss = _rss_mb()
                t0 = time.perf_counter()
                summary = batch_segment(inputs, out_dir, settings, scheduler=cluster.scheduler_address)
                seconds = time.perf_counter() - t0
                with Client(cluster.scheduler_address) as client:
                    peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
                rss = max(peaks.values())
            finally:
                cluster.close()
        assert not summary.failed, summary.failed
        return {
            "seconds": seconds,
            "mpix": mpix,
            "rss_mb": rss,
            "base_rss_mb": base_rss,
            "threads": torch.get_num_threads(),
        }
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, nargs="*", default=[50, 100, 200])
    parser.add_argument("--depths", type=int, nargs="*", default=[64, 128])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--one", nargs=3, metavar=("KIND", "SIZE", "WHERE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    if args.one:
        kind, size, where = args.one
        print(json.dumps(run_one(kind, int(size), where)))
        return
    configs = [("stack", n, "local") for n in args.frames] + [("volume", z, "local") for z in args.depths]
    if args.files:
        configs += [("files", args.files, "local"), ("files", args.files, "cluster")]
    rows = []
    for kind, size, where in configs:
        if kind == "stack":
            _stack(size)
        elif kind == "volume":
            _volume(size)
        else:
            _files(size)
        proc = subprocess.run(
            [sys.executable, __file__, "--one", kind, str(size), where], capture_output=True, text=True
        )
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            continue
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        label = {
            "stack": f"zarr stack {size}x1024x1024 uint16, 2D",
            "volume": f"zarr volume {size}x512x512 uint16, 3D",
            "files": f"{size} files 1024x1024 float32, 2D",
        }[kind]
        runner = "local threads" if where == "local" else "LocalCluster 2 workers x 1 thread"
        rows.append(
            f"| {label} | {runner} | {res['mpix']:.1f} | {res['seconds']:.1f} | "
            f"{res['mpix'] / res['seconds']:.2f} | {res['rss_mb']:.0f} |"
        )
        print(rows[-1], file=sys.stderr, flush=True)
    print("| input | runner | MP | s | MP/s | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
