"""DEMSegmenter: fit on some images, predict on others with the same classes; save and load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_dem import DEMSegmenter
from napari_dem.core.edges import refine_edges
from napari_dem.core.errors import NotFittedError
from napari_dem.core.model import ModelFileError
from napari_dem.core.refine import drop_wrong_side, fill_small_holes
from napari_dem.core.segment import segment

DATA = Path(__file__).parent / "data"
REFERENCE = DATA / "segment_reference.npz"


@pytest.mark.parametrize(("sample", "axes"), [("nuclei2d", "YX"), ("nuclei3d", "ZYX")])
def test_fit_predict_gives_the_labels_of_the_one_call_segment(sample: str, axes: str) -> None:
    """The latent mixture is the one ``segment()`` fitted before it became a segmenter (commit
    8218aec: ``segment(SAMPLES[name]()[0], axes, device="cpu").labels``, K = 3 in 2D and 2 in
    3D, saved in tests/data): with that K given, its clusters are the same partition, pixel
    for pixel (their ids may differ: labels are now ordered by the denoised intensity). The
    models shipped then are kept beside the reference (tests/data/dem*d_8218aec.pt), since
    the shipped ones have been retrained since."""
    from napari_dem._sample_data import SAMPLES

    image, _ = SAMPLES[sample]()
    expected = np.load(REFERENCE)["dsb2018" if sample == "nuclei2d" else "nuclei3d"]
    k = int(expected.max())
    model = DATA / f"dem{len(axes)}d_8218aec.pt"
    seg = DEMSegmenter(n_clusters=k, task="objects", model=model, device="cpu").fit(image, axes)
    clusters = seg.predict_proba(image, axes).argmax(-1) + 1
    pairs = set(zip(expected.ravel().tolist(), clusters.ravel().tolist(), strict=True))
    assert len(pairs) == k == len(np.unique(clusters))  # one cluster per old label: a bijection
    assert seg.fit_predict(image, axes).dtype == np.uint8


def test_fit_on_one_image_and_predict_another_keeps_the_classes(nuclei2d, tiny_model) -> None:
    img, _ = nuclei2d
    fixed = {"n_clusters": 3, "task": "classes"}
    seg = DEMSegmenter(model=tiny_model, device="cpu", **fixed).fit(img, "YX")
    assert seg.n_clusters_ == 3 and seg.mode_ == "2d" and seg.params_.means.shape[1] == 3
    assert np.array_equal(
        seg.predict(img, "YX"), segment(img, "YX", model=tiny_model, device="cpu", **fixed).labels
    )
    # A brighter copy: a new fit renormalises it (same labels as the original), the fitted
    # segmenter does not (its range and mixture stay those of the first image).
    brighter = img.astype(np.float32) * 1.6
    refit = DEMSegmenter(model=tiny_model, device="cpu", **fixed).fit_predict(brighter, "YX")
    assert np.mean(refit == seg.predict(img, "YX")) > 0.999
    assert np.mean(seg.predict(brighter, "YX") != refit) > 0.02
    # Frames of a stack are predicted with the same mixture: read as they are, frame 0 equals
    # the single image; by default the two frames (one field at two exposures) are brought to
    # one brightness first (core/frames.py), and get one labelling.
    still = DEMSegmenter(model=tiny_model, device="cpu", frames="none", **fixed).fit(img, "YX")
    stack = still.predict(np.stack([img, brighter]), "TYX")
    assert np.array_equal(stack[0], still.predict(img, "YX"))
    assert np.mean(stack[0] == stack[1]) < 0.98
    matched = seg.predict(np.stack([img, brighter]), "TYX")
    assert np.mean(matched[0] == matched[1]) > 0.999


def test_fit_on_several_images(nuclei2d, tiny_model) -> None:
    img, _ = nuclei2d
    seg = DEMSegmenter(model=tiny_model, device="cpu", n_clusters=2, task="classes")
    seg.fit([img, img[::-1].copy()], "YX")
    assert seg.n_clusters_ == 2 and set(np.unique(seg.predict(img, "YX"))) == {1, 2}


def test_predict_proba_matches_predict(nuclei2d, tiny_model) -> None:
    img, _ = nuclei2d
    seg = DEMSegmenter(model=tiny_model, device="cpu", tile_size=48).fit(img, "YX")
    proba = seg.predict_proba(img, "YX")
    assert proba.shape == (*img.shape, seg.n_clusters_) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(-1), 1.0, atol=1e-4)
    # predict gives the task's labels of the most responsible cluster, and for objects their
    # outline re-drawn at the half-way intensity (core/edges.py), tile by tile (tiles of 48 px),
    # then, while the objects are the minority, the holes smaller than a typical object filled,
    # and last the pieces not on the objects' side of their surround dropped
    expected = seg.label_table_[proba.argmax(-1) + 1]
    assert seg.decision_.task == "objects"
    grey = (img.astype(np.float32) - seg.lo_[0]) / (seg.hi_[0] - seg.lo_[0])
    expected = refine_edges(expected > 0, grey)
    weights = seg.params_.log_weights[0].exp().numpy()
    objects = np.isin(np.arange(1, seg.n_clusters_ + 1), seg.decision_.objects)
    if weights[objects].sum() < 0.5:
        expected = fill_small_holes(expected, np.pi * seg.decision_.object_radius**2)
    means = [np.average(seg.cluster_intensity_[m], weights=weights[m]) for m in (objects, ~objects)]
    expected = drop_wrong_side(expected, grey, bright=bool(means[0] > means[1]))
    assert np.array_equal(expected.astype(np.uint8), seg.predict(img, "YX"))


def test_save_and_load_give_the_same_predictions(tmp_path: Path, nuclei2d, tiny_model) -> None:
    img, _ = nuclei2d
    seg = DEMSegmenter(model=tiny_model, device="cpu", n_clusters=4, seed=2).fit(img, "YX")
    path = seg.save(tmp_path / "seg.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["seg.pt"]
    loaded = DEMSegmenter.load(path, device="cpu")
    assert loaded.n_clusters_ == 4 and loaded.seed == 2 and loaded.mode_ == "2d"
    other = np.roll(img, 17, axis=1)
    assert np.array_equal(loaded.predict(other, "YX"), seg.predict(other, "YX"))
    np.testing.assert_array_equal(loaded.lo_, seg.lo_)


def test_bad_segmenter_files_are_refused_and_never_executed(tmp_path: Path, tiny_model) -> None:
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (marker.touch, ())

    torch.save({"format": "napari-dem-segmenter", "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ModelFileError, match="not executed"):
        DEMSegmenter.load(tmp_path / "evil.pt")
    assert not marker.exists()
    from napari_dem.core.model import save_model

    save_model(tiny_model, tmp_path / "model.pt")  # a model, not a fitted segmenter
    with pytest.raises(ModelFileError, match="not a napari-dem segmenter"):
        DEMSegmenter.load(tmp_path / "model.pt")


def test_predict_needs_a_fit_and_a_matching_image(nuclei2d, tiny_model) -> None:
    img, _ = nuclei2d
    with pytest.raises(NotFittedError, match="fit"):
        DEMSegmenter(model=tiny_model).predict(img, "YX")
    seg = DEMSegmenter(model=tiny_model, device="cpu").fit(img, "YX")
    with pytest.raises(ValueError, match="channel"):
        seg.predict(np.stack([img, img], -1), "YXC")


def test_the_callers_model_is_not_changed(nuclei2d, tiny_model) -> None:
    img, _ = nuclei2d
    tiny_model.train()
    DEMSegmenter(model=tiny_model, device="cpu").fit(img, "YX")
    assert tiny_model.training  # the segmenter works on its own copy in inference mode


def test_a_classes_task_never_runs_the_network() -> None:
    """Classes are fitted and labelled on the intensity, so with the task given as classes the
    network is not run (it was, in pass 1, for latents nobody read); the labels are those of
    the same K reached by the auto task, which does run it to decide."""
    from napari_dem.core.model import load_default_model
    from napari_dem.data.families import classes_image

    img, _ = classes_image((128, 128), n_classes=3, seed=5101)
    model = load_default_model(2)
    calls = []
    model.encoder.register_forward_hook(lambda *args: calls.append(1))
    auto = DEMSegmenter(model=model, device="cpu")
    auto_labels = auto.fit_predict(img, "YX")
    assert auto.decision_.task == "classes" and calls  # deciding needs the latents
    calls.clear()
    given = DEMSegmenter(n_clusters=auto.n_clusters_, task="classes", model=model, device="cpu")
    assert np.array_equal(given.fit_predict(img, "YX"), auto_labels)
    assert not calls
    # With strokes that re-draw the classes (no labels to correct), the latents are used.
    strokes = np.zeros(img.shape, dtype=np.uint8)
    strokes[5, 5], strokes[60, 60], strokes[120, 120] = auto_labels[5, 5], auto_labels[60, 60], 3
    DEMSegmenter(task="classes", model=model, device="cpu").fit(img, "YX", scribbles=strokes)
    assert calls


def test_the_grey_view_reads_the_normalised_channel_mean_block_by_block() -> None:
    """What the instance step reads for small objects: per channel (x - lo) / (hi - lo), then
    the mean over channels, in the labels' axes; a frame index reads that frame only."""
    rng = np.random.default_rng(0)
    stack = rng.uniform(0, 200, (3, 2, 40, 48)).astype(np.float32)  # T C Y X
    seg = DEMSegmenter(device="cpu", n_clusters=2, task="objects").fit(stack, "TCYX")
    view = seg.grey(stack, "TCYX")
    lo, hi = seg.lo_.reshape(1, -1, 1, 1), seg.hi_.reshape(1, -1, 1, 1)
    expected = ((stack - lo) / (hi - lo)).mean(1)
    assert view.shape == (3, 40, 48)
    np.testing.assert_allclose(view[1], expected[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(view[(2, slice(5, 9), slice(None))], expected[2, 5:9], rtol=1e-5, atol=1e-6)
    grey = rng.uniform(0, 1, (40, 48)).astype(np.float32)
    one = DEMSegmenter(device="cpu", n_clusters=2, task="objects").fit(grey, "YX")
    np.testing.assert_allclose(
        one.grey(grey, "YX")[()], (grey - one.lo_[0]) / (one.hi_[0] - one.lo_[0]), rtol=1e-5, atol=1e-6
    )
