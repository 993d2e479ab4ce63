"""Default settings decide K, the task and the object polarity (core/decide.py), through the API
and the CLI; each check against a known answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_dem.api import segment_image
from napari_dem.cli import main
from napari_dem.core.decide import mean_run
from napari_dem.core.metrics import foreground_iou, instance_f1, matched_class_dice
from napari_dem.core.segmenter import DEMSegmenter
from napari_dem.data.families import classes_image, objects_image


@pytest.fixture(scope="module")
def dsb_crop() -> np.ndarray:
    from napari_dem._sample_data import SAMPLES

    image, _ = SAMPLES["nuclei2d"]()
    return np.asarray(image)[:256, :256]


def test_default_finds_bright_objects_with_background_zero(dsb_crop) -> None:
    out = segment_image(dsb_crop, "YX", device="cpu")
    d = out.semantic.decision
    assert d.task == "objects" and d.k_chosen and d.objects[-1] == d.n_clusters
    assert set(np.unique(out.labels)) == {0, 1}
    assert 0.1 < out.labels.mean() < 0.5  # nuclei are the minority, background is 0
    assert "objects" in d.summary() and "chosen from the data" in d.summary()


def test_inverted_image_gives_the_same_objects(dsb_crop) -> None:
    """Dark objects on a bright field (brightfield, H&E) are found as objects too."""
    normal = segment_image(dsb_crop, "YX", device="cpu")
    inverted = segment_image(dsb_crop.max() - dsb_crop, "YX", device="cpu")
    d = inverted.semantic.decision
    assert d.task == "objects" and d.objects[0] == 1  # the darkest cluster(s)
    assert foreground_iou(inverted.labels == 1, normal.labels == 1) > 0.85


def test_objects_covering_more_than_half_the_image_are_objects() -> None:
    img, truth = objects_image((160, 160), coverage=0.6, seed=9500, noise="low")
    assert (truth > 0).mean() > 0.5
    out = segment_image(img, "YX", device="cpu")
    assert out.semantic.decision.task == "objects"
    assert foreground_iou(out.labels == 1, truth > 0) > 0.8


def test_dense_dark_objects_are_objects_not_two_textures() -> None:
    """Dark objects over 60 % of a bright field: the intensity has one mode, and the texture
    features tell the objects' edges from their insides, so the field was read as two textures
    (F1 0.00). Objects that stand out of their surround in brightness are objects."""
    img, truth = objects_image((256, 256), coverage=0.6, polarity="dark", seed=9996)
    out = segment_image(img, "YX", device="cpu", instances=True)
    d = out.semantic.decision
    assert d.task == "objects" and d.objects[0] == 1 and "texture" not in d.reason
    assert foreground_iou(out.labels > 0, truth > 0) > 0.85  # measured 0.884
    assert instance_f1(out.labels, truth) > 0.7  # measured 0.796


def test_dark_nucleoli_are_part_of_their_nucleus_and_a_lumen_is_not() -> None:
    """Objects come out solid (a dark pocket smaller than an object is filled, as each instance
    already was), while the lumen that a ring of touching nuclei encloses stays background."""
    from skimage.draw import disk

    rng = np.random.default_rng(0)
    img = np.full((192, 192), 0.1)
    centres = [(30, 30), (30, 90), (90, 30), (175, 20), (30, 160)]
    ring = [(110 + 45 * np.sin(a), 110 + 45 * np.cos(a)) for a in np.linspace(0, 2 * np.pi, 15)[:-1]]
    for c in centres + ring:
        img[disk(c, 11, shape=img.shape)] = 0.8
    for c in centres:
        img[disk(c, 4, shape=img.shape)] = 0.1  # a nucleolus as dark as the background
    img += rng.normal(0, 0.03, img.shape)
    labels = segment_image(img, "YX", device="cpu").labels
    assert all(labels[c] == 1 for c in centres)
    assert labels[100:121, 100:121].max() == 0  # the lumen


@pytest.mark.parametrize(
    ("seed", "blur", "noise", "level"),
    [(0, 0, 0.03, 0.7), (0, 1, 0.03, 0.7), (0, 2, 0.05, 0.7), (1, 1, 0.03, -0.7), (4, 2, 0.05, -0.7)],
)
def test_clean_discs_are_objects_though_their_edges_add_modes(
    seed: int, blur: float, noise: float, level: float
) -> None:
    """High signal to noise: the blurred outlines spread over every value between the two
    levels and the mode count finds 3 or 4 modes (these images were read as classes). Dark
    discs on a bright field (``level`` < 0): a few outline pixels among the interior's
    made a mode of their own there (these two were read as classes)."""
    from scipy import ndimage as ndi
    from skimage.draw import disk

    rng = np.random.default_rng(seed)
    truth = np.zeros((192, 192), dtype=bool)
    for c in rng.uniform(12, 180, (19, 2)):
        truth[disk(c, 11, shape=truth.shape)] = True
    field = 0.1 if level > 0 else 0.8
    img = ndi.gaussian_filter(field + level * truth, blur) + rng.normal(0, noise, truth.shape)
    out = segment_image(img, "YX", device="cpu")
    assert out.semantic.decision.task == "objects"
    assert foreground_iou(out.labels == 1, truth) > 0.9


def test_dim_nuclei_beside_bright_ones_stay_objects() -> None:
    """Nuclei at two brightness levels (0.15 and 0.8 on 0.05): the extra cluster split the dim
    ones off into the background with a more compact reading of the bright ones alone (K=4,
    none of the dim nuclei found, F1 0.54); it may not take half the objects' area away."""
    from scipy import ndimage as ndi

    _, truth = objects_image((256, 256), seed=9950)
    rng = np.random.default_rng(10000)
    level = np.concatenate([[0.0], rng.choice([0.15, 0.8], truth.max())])
    img = ndi.gaussian_filter(level[truth], 1) + 0.05 + rng.normal(0, 0.015, truth.shape)
    out = segment_image(img.astype(np.float32), "YX", device="cpu", instances=True)
    dim = np.isin(truth, np.flatnonzero(level == 0.15))
    assert out.semantic.decision.task == "objects"
    assert (out.labels[dim] > 0).mean() > 0.5  # measured 0.62
    assert instance_f1(out.labels, truth) > 0.8  # measured 0.835


def test_nuclei_at_two_brightness_levels_are_objects_on_the_intensity() -> None:
    """Nuclei at 0.15 and 0.8 on 0.05, fewer of them (the test above): the latents' clusters
    split the background by its neighbourhood, no latent reading passed, and the image was
    four classes (background = class 1). The intensity's clusters are the three levels, and
    its reading "all but the darkest are objects" is compact: objects, dim ones included."""
    from scipy import ndimage as ndi

    _, truth = objects_image((256, 256), seed=9951)
    rng = np.random.default_rng(0)
    level = np.concatenate([[0.0], rng.choice([0.15, 0.8], truth.max())])
    img = ndi.gaussian_filter(level[truth], 1) + 0.05 + rng.normal(0, 0.015, truth.shape)
    out = segment_image(img.astype(np.float32), "YX", device="cpu", instances=True)
    d = out.semantic.decision
    assert (d.task, d.features) == ("objects", "intensity")  # was classes (K=4)
    dim = np.isin(truth, np.flatnonzero(level == 0.15))
    assert (out.labels[dim] > 0).mean() > 0.9
    assert (out.labels[truth == 0] == 0).mean() > 0.95
    assert instance_f1(out.labels, truth) > 0.9  # measured 0.941


@pytest.mark.parametrize("inside, outside", [(0.7, 0.1), (0.25, 0.75)], ids=["bright", "dark"])
def test_one_cell_wider_than_the_volume_model_sees_is_an_object(inside: float, outside: float) -> None:
    """One cell 90 px across and 28 slices deep in a 40x160x160 stack, bright or dark: shrunk to
    the model's scale it leaves too little of the field for the latents' reading (18 % of it
    background), and it was read as two classes (F1 0 for the dark cell). On the intensity
    it is one compact island on 90 % of background."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(3)
    z, y, x = np.ogrid[:40, :160, :160]
    truth = (((z - 20) / 14) ** 2 + ((y - 80) / 45) ** 2 + ((x - 80) / 45) ** 2 <= 1).astype(np.int32)
    grain = ndi.gaussian_filter(rng.normal(size=truth.shape), 1.5)
    cell = outside + (inside - outside) * truth * (1 + 0.2 * grain / grain.std())
    img = ndi.gaussian_filter(cell, 1.5) + rng.normal(0, 0.05, truth.shape)
    out = segment_image(img.astype(np.float32), "ZYX", device="cpu", instances=True)
    assert out.semantic.decision.task == "objects"
    assert foreground_iou(out.labels > 0, truth > 0) > 0.9  # measured 0.973-0.974
    assert instance_f1(out.labels, truth) == 1.0


def test_tissue_classes_are_classes_with_the_right_k() -> None:
    img, truth = classes_image((160, 160), n_classes=3, scale=8.0, seed=9501)
    out = segment_image(img, "YX", device="cpu")
    d = out.semantic.decision
    assert (d.task, d.n_clusters, d.features) == ("classes", 3, "intensity")
    assert set(np.unique(out.labels)) == {1, 2, 3}
    assert matched_class_dice(out.labels, truth) > 0.9


def test_given_choices_override_the_decision(dsb_crop) -> None:
    out = segment_image(dsb_crop, "YX", device="cpu", n_clusters=3, task="classes")
    assert (out.semantic.decision.task, out.semantic.decision.k_chosen) == ("classes", False)
    assert set(np.unique(out.labels)) == {1, 2, 3}
    darkest = segment_image(dsb_crop, "YX", device="cpu", n_clusters=2, objects="darkest")
    assert darkest.semantic.decision.objects == (1,)
    same = segment_image(dsb_crop, "YX", device="cpu", n_clusters=2, background="brightest")
    assert np.array_equal(darkest.labels, same.labels)
    with pytest.raises(ValueError, match="either objects or background"):
        segment_image(dsb_crop, "YX", device="cpu", objects="brightest", background="darkest")


def test_nuclei_with_nucleoli_are_measured_whole_and_found_whole() -> None:
    """DAPI-like nuclei 30-50 px across with dark nucleoli and bright spots: a threshold cuts
    the nucleoli out as holes, and measured around those the nuclei looked 11.5 px in radius,
    were segmented at full size and cut apart at their nucleoli (F1 0.51). Measured whole
    they are shrunk to the model's scale and found whole."""
    from napari_dem.data.families import nuclei_with_nucleoli

    img, truth = nuclei_with_nucleoli((320, 320), seed=9505)
    out = segment_image(img, "YX", device="cpu", instances=True)
    d = out.semantic.decision
    assert d.zoom < 0.8 and d.object_radius > 13
    assert instance_f1(out.labels, truth) > 0.85
    assert foreground_iou(out.labels > 0, truth > 0) > 0.85


def test_large_objects_are_segmented_at_the_model_scale() -> None:
    """Discs ~70 px across: at full size the model finds rims; shrunk, whole discs."""
    img, truth = objects_image((320, 320), radius=(30.0, 40.0), coverage=0.3, seed=9502, noise="low")
    out = segment_image(img, "YX", device="cpu", instances=True)
    d = out.semantic.decision
    assert d.zoom < 0.6 and d.object_radius > 20
    assert out.labels.shape == img.shape
    assert foreground_iou(out.labels > 0, truth > 0) > 0.85
    seg = out.semantic.segmenter  # predicting again rescales too, and so do the probabilities
    proba = seg.predict_proba(img, "YX")
    assert proba.shape == (*img.shape, d.n_clusters) and np.allclose(proba.sum(-1), 1, atol=1e-4)
    objects = np.isin(proba.argmax(-1) + 1, d.objects)
    # predict's outline is re-drawn at the half-way intensity (core/edges.py); the rest agrees
    assert foreground_iou(objects, seg.predict(img, "YX") == 1) > 0.9


def test_objects_40_to_60_px_across_are_shrunk_to_the_model_scale() -> None:
    """Dark discs 40-60 px across (radius 20-30): measured around their holes at 13 px, under
    twice the model's radius, they were segmented at full size, where the model sees part of
    each (F1 0.33, fg IoU 0.54); above 1.2 times it they are shrunk (benchmarks/bench_sizes.py),
    and measured whole (19 px) to the target radius (zoom 0.65 -> 0.48, F1 0.933 -> 1.000)."""
    img, truth = objects_image((224, 224), radius=(20.0, 30.0), polarity="dark", seed=9511)
    out = segment_image(img, "YX", device="cpu", instances=True)
    d = out.semantic.decision
    assert d.task == "objects" and d.objects[0] == 1 and 0.3 < d.zoom < 0.8
    assert foreground_iou(out.labels > 0, truth > 0) > 0.94  # measured 0.964
    assert instance_f1(out.labels, truth) > 0.9  # measured 1.000


def test_objects_read_at_full_size_stay_objects_at_the_model_scale() -> None:
    """Six dark discs 50-80 px across: at full size they read as dark objects; shrunk, the
    three-cluster reading failed the rule that tells tissue classes (the objects must be
    smaller than every background region) and the field came out as two classes (F1 0.00,
    fg IoU 0.08). Their polarity is known by then, and their islands are compact discs."""
    img, truth = objects_image((224, 224), radius=(25.0, 40.0), polarity="dark", seed=9523)
    out = segment_image(img, "YX", device="cpu", instances=True)
    d = out.semantic.decision
    assert d.task == "objects" and d.objects[0] == 1 and d.zoom < 0.6
    assert foreground_iou(out.labels > 0, truth > 0) > 0.95  # measured 0.980
    assert instance_f1(out.labels, truth) == 1.0


def test_classes_found_at_the_model_scale_are_drawn_at_full_resolution() -> None:
    """Two tissue classes in large regions: at full size their islands pass for large objects,
    so the fit shrinks the image (0.42x) and there reads them as classes, which were drawn on
    the shrunk grid. Classes need no network: they are fitted and drawn on the image itself, the
    same labels as with the classes task given (a fundus photograph came out in 25 px blocks)."""
    img, truth = classes_image((192, 192), n_classes=2, seed=9136, scale=12.0)
    out = segment_image(img, "YX", device="cpu")
    d = out.semantic.decision
    assert (d.task, d.n_clusters, d.zoom) == ("classes", 2, 1.0)
    assert "read at 0.4" in d.reason and "drawn at full resolution" in d.reason
    given = segment_image(img, "YX", device="cpu", task="classes")
    assert np.array_equal(out.labels, given.labels)
    assert matched_class_dice(out.labels, truth) > 0.97  # measured 0.982


def test_two_large_cells_in_a_volume_are_objects() -> None:
    """Two textured cells 60 px across in a 40x160x160 stack: two islands on the sampling grid
    of solidity 0.88 (their outlines are rough at that scale); they were two classes."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(3)
    z, y, x = np.ogrid[:40, :160, :160]
    truth = np.zeros((40, 160, 160), dtype=np.int32)
    for i, (cy, cx) in enumerate([(50, 50), (110, 110)]):
        truth[((z - 20) / 12) ** 2 + ((y - cy) / 30) ** 2 + ((x - cx) / 30) ** 2 <= 1] = i + 1
    grain = ndi.gaussian_filter(rng.normal(size=truth.shape), 1.5)
    cells = 0.6 * (truth > 0) * (1 + 0.2 * grain / grain.std())
    img = ndi.gaussian_filter(0.1 + cells, 1.5) + rng.normal(0, 0.05, truth.shape)
    out = segment_image(img.astype(np.float32), "ZYX", device="cpu", instances=True)
    assert out.semantic.decision.task == "objects"
    assert foreground_iou(out.labels > 0, truth > 0) > 0.9  # measured 0.968
    assert instance_f1(out.labels, truth) == 1.0


def test_an_extra_cluster_that_joins_objects_and_background_into_a_sea_is_refused() -> None:
    """Three textured cells 220 px across: on the shrunk image the extra cluster split the
    background in two and its objects reading was one piece over 68 % of the field (a "sea",
    which no reading may have); it was kept, being as compact, and the field was labelled."""
    from scipy import ndimage as ndi
    from skimage.draw import disk

    rng = np.random.default_rng(7)
    truth = np.zeros((768, 768), dtype=np.int32)
    for i, c in enumerate([(200, 200), (520, 300), (300, 560)]):
        truth[disk(c, 110, shape=truth.shape)] = i + 1
    grain = ndi.gaussian_filter(rng.normal(size=truth.shape), 2)
    cells = 0.6 * (truth > 0) * (1 + 0.3 * grain / grain.std())
    img = ndi.gaussian_filter(0.1 + cells, 2) + rng.normal(0, 0.05, truth.shape)
    out = segment_image(img.astype(np.float32), "YX", device="cpu", instances=True)
    assert out.semantic.decision.zoom < 0.5
    assert foreground_iou(out.labels > 0, truth > 0) > 0.9  # was 0.0 (68 % of the field labelled)
    assert instance_f1(out.labels, truth) == 1.0


def test_a_saved_segmenter_keeps_its_decision(tmp_path: Path, dsb_crop) -> None:
    seg = DEMSegmenter(device="cpu").fit(dsb_crop, "YX")
    path = seg.save(tmp_path / "fitted.demseg")
    again = DEMSegmenter.load(path, "cpu")
    assert again.decision_ == seg.decision_
    assert np.array_equal(again.predict(dsb_crop, "YX"), seg.predict(dsb_crop, "YX"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--objects", "brightest", "--background", "darkest"], "either objects or background"),
        (["--objects", "two"], "brightest, darkest or cluster ids"),
        (["--clusters", "1"], "at least 2"),
        (["--objects", "5", "--clusters", "3"], "must lie in 1..3"),
    ],
)
def test_bad_choices_are_one_line_errors(tmp_path: Path, args, message, capsys) -> None:
    src = tmp_path / "img.tif"
    tifffile.imwrite(src, objects_image((64, 64), seed=9503)[0])
    assert main(["segment", str(src), "-o", str(tmp_path / "o.tif"), "-q", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("napari-dem: error:") and message in err and "\n" not in err
    assert not (tmp_path / "o.tif").exists()


@pytest.mark.parametrize(
    "args", [["--task", "tissue"], ["--clusters", "many"], ["--stain", "eosin"], ["--frames", "bleach"]]
)
def test_bad_option_values_are_refused_by_the_parser(tmp_path: Path, args, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["segment", "x.tif", "-o", str(tmp_path / "o.tif"), *args])
    assert exc.value.code == 2
    assert "napari-dem segment: error:" in capsys.readouterr().err


def test_cli_reports_the_decision(tmp_path: Path, dsb_crop, capsys) -> None:
    src = tmp_path / "nuclei.tif"
    tifffile.imwrite(src, dsb_crop)
    assert main(["segment", str(src), "-o", str(tmp_path / "labels.tif")]) == 0
    err = capsys.readouterr().err
    assert "objects (bright on dark" in err and "chosen from the data" in err
    labels = tifffile.imread(tmp_path / "labels.tif")
    assert set(np.unique(labels)) == {0, 1}


def test_cli_reads_a_stained_slide_by_its_haematoxylin_unless_told_not_to(tmp_path: Path, capsys) -> None:
    from napari_dem.core.stains import READ_NOTE
    from napari_dem.data.families import he_glands

    rgb, truth = he_glands((256, 256), seed=9981)
    src = tmp_path / "he.tif"
    tifffile.imwrite(src, rgb, photometric="rgb")
    found = {}
    for stain in ("auto", "none"):
        out = tmp_path / f"{stain}.tif"
        assert main(["segment", str(src), "-o", str(out), "--instances", "--stain", stain]) == 0
        found[stain] = (READ_NOTE in capsys.readouterr().err, instance_f1(tifffile.imread(out), truth))
    assert found["auto"][0] and not found["none"][0]
    assert found["auto"][1] > 0.7 and found["auto"][1] > found["none"][1] + 0.2


def test_a_lone_dark_cell_in_a_wide_field_is_found() -> None:
    """One dark cell, 0.1 % of the field, under uneven light: too few pixels for an intensity
    mode, and the two-cluster latent mixture cut the noise in two, so the field was "no
    objects". With more components the cell gets one of its own, 18 noise levels out."""
    img, truth = objects_image((320, 320), polarity="dark", coverage=0.003, seed=9963)
    assert truth.max() == 1 and (truth > 0).mean() < 0.005
    out = segment_image(img, "YX", device="cpu", instances=True)
    d = out.semantic.decision
    assert d.task == "objects" and d.objects == (1,) and d.n_clusters > 2, d.reason
    assert foreground_iou(out.labels > 0, truth > 0) > 0.9
    assert instance_f1(out.labels, truth) == 1.0


def test_specks_darker_than_the_field_are_not_bright_objects() -> None:
    """Four bright nuclei in a 384 px field: the latents' object cluster also took in seven
    specks of 27-50 px that are darker than the background around them (F1 0.53)."""
    img, truth = objects_image((384, 384), coverage=0.01, noise="medium", seed=9960)
    out = segment_image(img, "YX", device="cpu", instances=True)
    assert out.semantic.decision.objects and out.labels.max() == truth.max() == 4
    assert instance_f1(out.labels, truth) == 1.0


def test_an_empty_field_has_no_objects(tmp_path: Path, capsys) -> None:
    """Noise, or an unevenly lit empty field: one intensity level, no texture, nothing compact.
    It was two classes, half the field painted by chance; a batch over a plate counted them."""
    rng = np.random.default_rng(1)
    noise = rng.normal(0.5, 0.1, (192, 192)).astype(np.float32)
    out = segment_image(noise, "YX", device="cpu", instances=True)
    d = out.semantic.decision
    assert (d.task, d.objects) == ("objects", ())
    assert not out.labels.any()
    ramp = 0.3 + 0.4 * np.mgrid[:192, :192][1] / 192 + rng.normal(0, 0.02, (192, 192))
    src = tmp_path / "empty.tif"
    tifffile.imwrite(src, rng.poisson(20 * ramp).astype(np.uint16))  # a camera's counts
    assert main(["segment", str(src), "-o", str(tmp_path / "labels.tif")]) == 0
    err = capsys.readouterr().err
    assert "empty.tif: 0 objects ->" in err and "no objects (one intensity level" in err
    assert not tifffile.imread(tmp_path / "labels.tif").any()
    # A field that is not empty keeps its objects: one bright disc in that noise.
    disc = noise.copy()
    disc[((np.mgrid[:192, :192] - 96) ** 2).sum(0) < 15**2] += 0.6
    assert segment_image(disc, "YX", device="cpu").labels[96, 96] == 1


def test_one_nucleus_in_an_empty_field_is_found() -> None:
    """One nucleus in a 384 px field (0.14 % of it, 17 noise levels above): the intensity has
    a mode for it, but the mixture's k-means seeds follow where most points are and cut the
    background in two (two classes of noise, fg IoU 0.008). Started from the modes' own
    partition, the intensity mixture keeps the nucleus a component of its own."""
    img, truth = objects_image((384, 384), coverage=0.003, noise="medium", seed=9960)
    assert truth.max() == 1
    out = segment_image(img, "YX", device="cpu", instances=True)
    assert out.semantic.decision.task == "objects"
    assert foreground_iou(out.labels > 0, truth > 0) > 0.85  # measured 0.934
    assert instance_f1(out.labels, truth) == 1.0


def test_classes_are_labelled_on_a_sharper_intensity_than_the_mixture_is_fitted_on() -> None:
    """The mixture comes from the denoised intensity (sigma 1); each pixel is labelled on the
    intensity at sigma 0.5 (segmenter.CLASSES_SIGMA), which keeps class boundaries: on a
    5-class phantom that is measurably closer to the truth than labelling at sigma 1."""
    import torch
    from scipy import ndimage as ndi

    from napari_dem.core.em import e_step

    img, truth = classes_image((192, 192), n_classes=5, seed=5031)
    seg = DEMSegmenter(device="cpu").fit(img, "YX")
    assert seg.decision_.task == "classes" and seg.n_clusters_ == 5
    labels = seg.predict(img, "YX")
    x = (img.astype(np.float32) - seg.lo_[0]) / (seg.hi_[0] - seg.lo_[0])

    def assigned(sigma: float) -> np.ndarray:
        smooth = torch.from_numpy(ndi.gaussian_filter(x, sigma).reshape(-1, 1))
        f = (smooth - seg.feature_mean_) / seg.feature_scale_
        log_resp, _ = e_step(f.unsqueeze(0), seg.params_)
        return (log_resp[0].argmax(-1) + 1).numpy().reshape(x.shape)

    inside = (slice(3, -3), slice(3, -3))  # the blurs differ only in how they pad the border
    assert np.array_equal(labels[inside], assigned(0.5)[inside])
    assert matched_class_dice(labels, truth) > matched_class_dice(assigned(1.0), truth) + 0.01


def test_the_depth_of_objects_comes_from_their_run_lengths() -> None:
    """Voxel-weighted mean runs scale with each semi-axis of an ellipsoid (a ball's: 1.5 r)."""
    z, y, x = np.mgrid[:64, :48, :48]
    ellipsoid = ((z - 32) / 20) ** 2 + ((y - 24) / 10) ** 2 + ((x - 24) / 10) ** 2 <= 1
    runs = [mean_run(ellipsoid, axis) for axis in range(3)]
    assert runs[0] / runs[1] == pytest.approx(2.0, rel=0.02) and runs[1] == pytest.approx(runs[2])
    assert runs[1] == pytest.approx(15.0, rel=0.03)
    assert mean_run(np.zeros((4, 4), bool), 0) == 0.0


def test_large_nuclei_in_a_volume_are_shrunk_along_z_too() -> None:
    """Isotropic balls ~30 voxels across (a confocal stack of large nuclei): with the plane
    alone shrunk they reach the 3D model three times deeper than wide and it finds fragments;
    Z follows the objects' own depth. Every second slice of the same stack (a coarser Z step)
    makes them half as deep, and Z is then left alone."""
    img, truth = objects_image((48, 128, 128), radius=(13.0, 16.0), coverage=0.25, seed=9506, noise="low")
    out = segment_image(img, "ZYX", device="cpu", instances=True)
    d = out.semantic.decision
    assert d.zoom < 0.6 and d.zoom_z < 0.8 and 0.7 < d.object_radius_z / d.object_radius < 1.4
    assert "in Z" in d.summary()
    assert out.labels.shape == img.shape
    # measured 0.944 / 1.000; with the plane alone shrunk 0.850 / 0.875
    assert foreground_iou(out.labels > 0, truth > 0) > 0.9
    assert instance_f1(out.labels, truth) > 0.95
    thin = segment_image(img[::2], "ZYX", device="cpu").semantic.decision
    assert thin.zoom < 0.6 and thin.zoom_z == 1.0 and thin.object_radius_z < 0.7 * thin.object_radius


def test_interior_modes_on_a_grid_with_one_point_along_z() -> None:
    """A thin stack's sampling grid can have a single Z plane: no gradient along it, no crash."""
    from napari_dem.core.decide import interior_modes

    rng = np.random.default_rng(0)
    plane = np.where(rng.random((1, 64, 64)) < 0.5, 0.2, 0.8) + rng.normal(0, 0.02, (1, 64, 64))
    assert interior_modes(plane, 0) == 2
    assert interior_modes(plane[0, :1], 0) == 2  # one row: the gradient along X only
