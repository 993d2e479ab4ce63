"""What a napari user installs: the wheel carries the plugin, and its requirements do not fight theirs.

The wheel test installs the built wheel, without dependencies, into a fresh virtual
environment that sees the test environment's packages (napari, torch, npe2) through a
path file, so nothing is downloaded, and asks npe2 which plugins it finds there.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import napari_dem

if sys.version_info >= (3, 11):
    import tomllib
else:  # hatchling (a testing requirement) brings tomli on Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_torch_is_not_upper_pinned_but_setup_installs_the_tested_build() -> None:
    deps = _pyproject()["project"]["dependencies"]
    for name in ("torch", "torchvision"):
        (spec,) = [d for d in deps if re.match(rf"{name}\s*[<>=!~]", d)]
        assert "<" not in spec and "==" not in spec and "~=" not in spec, f"upper pin on {name}: {spec}"
    setup = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert '"torch==2.14.1"' in setup and '"torchvision==0.29.1"' in setup


def test_all_extra_brings_napari_with_qt() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    assert any(d.replace(" ", "").startswith("napari[all]") for d in extras["all"])


def test_licence_and_citation_are_there_and_agree_with_the_package() -> None:
    import yaml

    assert "BSD 3-Clause" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert str(cff["version"]) == napari_dem.__version__
    paper = cff["preferred-citation"]
    assert paper["journal"] == "Image and Vision Computing" and paper["volume"] == 135
    assert [a["family-names"] for a in paper["authors"]] == ["Pu", "Sun", "Tang", "Xu"]
    assert paper["title"] in (ROOT / "README.md").read_text(encoding="utf-8")


def _build_wheel(dest: Path) -> Path:
    """The wheel, built offline by hatchling (the build backend) from the working tree."""
    code = (
        "import sys, os; from hatchling.builders.wheel import WheelBuilder; "
        "os.chdir(sys.argv[1]); "
        "print(next(WheelBuilder(sys.argv[1]).build(directory=sys.argv[2], versions=['standard'])))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT), str(dest)], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_built_wheel_installs_and_npe2_finds_the_plugin(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as zf:
        info = zf.getinfo("napari_dem/napari.yaml")
        assert zf.read(info) == (ROOT / "napari.yaml").read_bytes()
        assert any(n.endswith("licenses/LICENSE") or n.endswith("/LICENSE") for n in zf.namelist())
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    new_site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    # The test environment's packages (napari, torch, npe2) as a plain path entry: its own
    # .pth files, among them any editable install of napari-dem, are not processed.
    (new_site / "test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index",
         str(wheel)],
        check=True, env=env,
    )  # fmt: skip
    where = subprocess.run(
        [str(py), "-c", "import napari_dem; print(napari_dem.__file__)"],
        capture_output=True, text=True, check=True, env=env,
    ).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(venv), f"napari_dem imported from {where}, not the wheel"
    listing = subprocess.run(
        [str(py), "-m", "npe2", "list", "--fields", "name,version,contributions"],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    line = next((ln for ln in listing.stdout.splitlines() if "napari-dem" in ln), "")
    assert napari_dem.__version__ in line and "widgets" in line, listing.stdout
