"""The npe2 manifest: valid, shipped in the package, and every contribution resolves."""

from __future__ import annotations

import importlib

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
