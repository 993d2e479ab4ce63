"""One DemSession per viewer: the models and the training flag the widgets share."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gui

pytest.importorskip("napari")

from gui_helpers import dock  # noqa: E402

import napari_dem.core  # noqa: F401,E402  (crash guard first)


def _tiny():
    import torch

    from napari_dem.core.model import DEMConfig, DEMModel

    torch.manual_seed(0)
    return DEMModel(DEMConfig(width=4, latent_dim=2, em_steps=2))


def test_widgets_of_one_viewer_share_a_session_two_viewers_do_not(make_napari_viewer):
    a, b = make_napari_viewer(), make_napari_viewer()
    seg_a, ft_a = dock(a, "Segment (DEM)"), dock(a, "Fine-tune (DEM)")
    seg_b = dock(b, "Segment (DEM)")
    assert seg_a.session is ft_a.session
    assert seg_a.session is not seg_b.session

    changed: list[int] = []
    seg_a.session.model_changed.connect(changed.append)
    seg_a.session.set_trained_model(_tiny(), {"steps": 1})
    assert changed == [2]
    assert "fine-tuned #1" in seg_a.model_edit.placeholderText()
    assert "fine-tuned" in ft_a.model_label.text()
    assert seg_b.model_edit.placeholderText() == "default model"
    assert seg_b.session.model(2) is None

    assert seg_a.session.begin_training() and not seg_a.session.begin_training()
    assert seg_a.run() is None and "fine-tuning is running" in seg_a.message.text()
    assert not seg_b.session.training
    seg_a.session.end_training()


def test_model_copy_is_private():
    from napari_dem._widgets._session import DemSession

    session = DemSession()
    model = _tiny().eval()
    ident = session.set_trained_model(model, {})
    copy, same = session.model_copy(2)
    assert same == ident and copy is not model
    copy.train()
    next(copy.parameters()).data.zero_()
    assert not model.training and next(model.parameters()).abs().sum() > 0
    assert session.trained_model(ident) is not model
