"""The labels record (``layer.metadata["dem"]``) Segment and Batch write and Refine reads."""

from __future__ import annotations

import pytest

from napari_dem import __version__
from napari_dem.labels_meta import LabelsMeta, LabelsMetaError, ModelIdentity


def test_round_trip_keeps_every_field() -> None:
    meta = LabelsMeta(
        image="img",
        axes="ZYXC",
        mode="3d",
        n_clusters=2,
        seed=4,
        scale=(2.0, 0.5, 0.5),
        tile_size=64,
        model=ModelIdentity("session", 3, session_id="fine-tuned #2", training={"steps": 10}),
    )
    data = meta.to_dict()
    assert data["version"] == __version__ and data["task"] == "classes" and data["label_axes"] == "ZYX"
    back = LabelsMeta.from_dict(data)
    assert back == meta and back.model.training == {"steps": 10}


def test_default_model_identity_has_its_hash() -> None:
    ident = ModelIdentity.of_default(2)
    assert ident.source == "default" and len(ident.sha256) == 64 and ident.path.endswith("dem2d.pt")
    assert "default" in ident.describe()


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({}, "not made by napari-dem"),
        ({"image": "img", "axes": "YX", "n_clusters": 0}, "mode"),
        ({"image": "img", "axes": "YX", "mode": "auto", "n_clusters": 3}, "mode 'auto'"),
        ({"image": "img", "axes": "YX", "mode": "2d", "n_clusters": 0}, "K = 0"),
    ],
)
def test_incomplete_records_give_a_clear_error(data: dict, needle: str) -> None:
    with pytest.raises(LabelsMetaError, match=needle):
        LabelsMeta.from_dict(data, "labels")


def test_unknown_keys_are_ignored_and_old_model_paths_read() -> None:
    data = {"image": "i", "axes": "YX", "mode": "2d", "n_clusters": 3, "model": "m.pt", "extra": 1}
    meta = LabelsMeta.from_dict(data)
    assert meta.model.source == "file" and meta.model.path == "m.pt"
