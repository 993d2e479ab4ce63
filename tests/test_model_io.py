"""Model files: round trip, safe loading, clear errors for bad files, the shipped defaults."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_dem.core.model import (
    DEMConfig,
    DEMModel,
    ModelFileError,
    default_model_path,
    load_model,
    save_model,
)
from napari_dem.core.segment import segment


def test_round_trip_gives_identical_predictions(tmp_path: Path, tiny_model, nuclei2d) -> None:
    img, _ = nuclei2d
    path = save_model(tiny_model, tmp_path / "m.pt", training_images=["a (64, 64)"], seed=5)
    loaded = load_model(path)
    assert loaded.config == tiny_model.config
    assert loaded.metadata["seed"] == 5 and loaded.metadata["training_images"] == ["a (64, 64)"]
    a = segment(img, "YX", model=tiny_model, device="cpu").labels
    b = segment(img, "YX", model=loaded, device="cpu").labels
    assert np.array_equal(a, b)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # the temporary file was renamed away


def test_saved_metadata_is_json(tmp_path: Path, tiny_model) -> None:
    path = save_model(tiny_model, tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    meta = json.loads(payload["metadata"])
    assert meta["package_version"] and meta["architecture"]
    assert json.loads(payload["config"])["latent_dim"] == 2


def _training_script():
    """``scripts/train_default_model.py`` as a module (scripts/ is not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "train_default_model.py"
    spec = importlib.util.spec_from_file_location("train_default_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("ndim", [2, 3])
def test_shipped_default_models_load_and_are_small(ndim: int) -> None:
    path = default_model_path(ndim)
    assert path.stat().st_size < 10 * 2**20
    model = load_model(path)
    assert model.config.ndim == ndim
    names = model.metadata["training_images"]
    assert not any("dsb" in n.lower() or "stardist" in n.lower() or "bbbc" in n.lower() for n in names)
    # What ships is what the script rebuilds: its recipe and seed, and every generated family.
    script = _training_script()
    assert model.metadata["recipe"] == [list(stage) for stage in script.RECIPE[ndim]]
    assert model.metadata["seed"] == script.SEEDS[ndim]
    families = ("objects_image", "classes_image", "he_image") if ndim == 2 else (
        "objects_image_3d", "anisotropic_nuclei", "brain_phantom", "classes_image_3d"
    )  # fmt: skip
    assert all(any(n.startswith(f + "(") for n in names) for f in families), names
    # No generator seed of the benchmark panel (PANEL_SEEDS) went into training.
    from napari_dem.data.families import PANEL_SEEDS

    seeds = [int(m) for n in names for m in re.findall(r"seed=(\d+)", n)]
    assert seeds and not any(s in PANEL_SEEDS for s in seeds)


def test_corrupt_files_are_rejected_clearly(tmp_path: Path, tiny_model) -> None:
    good = save_model(tiny_model, tmp_path / "good.pt")
    raw = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "noise.pt").write_bytes(b"\x00\x01garbage" * 100)
    (tmp_path / "empty.pt").write_bytes(b"")
    for name in ("trunc.pt", "noise.pt", "empty.pt"):
        with pytest.raises(ModelFileError, match="corrupt or truncated"):
            load_model(tmp_path / name)
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "missing.pt")


def test_foreign_and_incompatible_files_are_rejected(tmp_path: Path, tiny_model) -> None:
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(ModelFileError, match="not a napari-dem model"):
        load_model(tmp_path / "foreign.pt")
    payload = torch.load(save_model(tiny_model, tmp_path / "m.pt"), weights_only=True)
    payload["state_dict"] = {k: v[..., :1] for k, v in payload["state_dict"].items()}
    torch.save(payload, tmp_path / "shapes.pt")
    with pytest.raises(ModelFileError, match="incompatible"):
        load_model(tmp_path / "shapes.pt")
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ModelFileError, match="version 99"):
        load_model(tmp_path / "future.pt")


def test_pickled_code_is_not_executed(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (Path("/tmp/napari_dem_pwned").touch, ())

    torch.save({"format": "napari-dem-model", "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ModelFileError) as info:
        load_model(tmp_path / "evil.pt")
    assert not Path("/tmp/napari_dem_pwned").exists()
    message = str(info.value)
    assert "not a napari-dem model" in message and "not executed" in message
    assert "weights_only" not in message and "\n" not in message  # no advice to run the file's code


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="n_clusters"):
        DEMModel(DEMConfig(n_clusters=1))
    with pytest.raises(ValueError, match="ndim"):
        DEMModel(DEMConfig(ndim=4))
    with pytest.raises(ValueError, match="unknown configuration"):
        DEMConfig.from_dict({"bogus": 1})
