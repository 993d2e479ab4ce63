"""What the default decides on scikit-image's bundled sample images (no ground truth).

Why: real photographs and micrographs that no rule was tuned on, read as a user would
(no options): a phase-contrast cell, an IHC stain, coins, a star field, a retina, textures
and text. There is no truth to score, so the table lists the decision and the share of the
field labelled as objects; docs/benchmarks.md says which readings are right by eye.

Run: ``OMP_NUM_THREADS=2 python benchmarks/bench_samples.py`` (about half a minute).
"""

from __future__ import annotations

import sys
from pathlib import Path

from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import table, timed
from napari_dem.api import segment_image

SAMPLES = (
    "cell", "coins", "immunohistochemistry", "hubble_deep_field", "microaneurysms", "retina",
    "moon", "text", "page", "camera", "brick", "grass", "gravel",
)  # fmt: skip


def main() -> None:
    rows = []
    for name in SAMPLES:
        image = getattr(data, name)()
        axes = "YXC" if image.ndim == 3 else "YX"
        out, seconds = timed(lambda image=image, axes=axes: segment_image(image, axes, device="cpu"))
        d = out.semantic.decision
        labelled = f"{float((out.labels > 0).mean()):.1%}" if d.task == "objects" else "(classes)"
        rows.append([name, "x".join(map(str, image.shape)), d.summary(), labelled, f"{seconds:.1f}"])
        print(" | ".join(rows[-1]), flush=True)
    print()
    print(table(["sample", "shape", "DEM decided", "objects' share", "s"], rows))


if __name__ == "__main__":
    main()
