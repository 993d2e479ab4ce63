"""The npe2 manifest: valid, shipped in the package, and every contribution resolves."""

from __future__ import annotations

import importlib
from pathlib import Path

from npe2 import PluginManifest


def test_manifest_is_valid_and_points_at_real_objects() -> None:
    manifest = PluginManifest.from_distribution("napari-dem")
    assert manifest.name == "napari-dem"
    for command in manifest.contributions.commands:
        module, _, attr = command.python_name.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), command.id
    widget_names = {w.display_name for w in manifest.contributions.widgets}
    assert widget_names >= {"Segment (DEM)", "Refine labels (DEM)", "Cluster objects (DEM)"}
    segment_menu = manifest.contributions.menus["napari/layers/segment"]
    in_segment_menu = {item.command for item in segment_menu}
    assert {"napari-dem.segment_widget", "napari-dem.cluster_widget"} <= in_segment_menu
    classify_menu = manifest.contributions.menus["napari/layers/classify"]
    assert "napari-dem.cluster_widget" in {item.command for item in classify_menu}


def test_sample_data_loads_without_downloads() -> None:
    from napari_dem._sample_data import nuclei2d, nuclei3d, timelapse

    ((img2d, _meta, kind),) = nuclei2d()
    assert img2d.shape == (512, 512) and kind == "image"
    assert nuclei3d()[0][0].ndim == 3 and timelapse()[0][0].ndim == 3


def test_packaged_manifest_is_a_real_file_identical_to_the_design_card() -> None:
    """A symlink breaks Windows checkouts; two copies that drift would make the design card lie."""
    root = Path(__file__).resolve().parents[1]
    shipped = root / "src" / "napari_dem" / "napari.yaml"
    assert not shipped.is_symlink(), "src/napari_dem/napari.yaml must be a real file"
    assert shipped.read_bytes() == (root / "napari.yaml").read_bytes(), "the two napari.yaml differ"


def test_manifest_has_valid_napari_hub_categories() -> None:
    from npe2.manifest.schema import PluginManifest as Schema

    manifest = Schema.from_file(Path(__file__).resolve().parents[1] / "napari.yaml")
    assert {str(getattr(c, "value", c)) for c in manifest.categories} >= {"Segmentation"}
