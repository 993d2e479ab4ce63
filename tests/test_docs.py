"""The documentation tells the truth: its CLI options, images and links exist, its Python runs."""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

import pytest

from napari_dem.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GUIDES = DOCS / "guides"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md")), *sorted(GUIDES.glob("*.md"))]
#: Options of other programs that the docs quote (pip, dask worker).
FOREIGN = {"--no-deps", "--index-url", "--nthreads"}


def _script_options() -> set[str]:
    """The options of the scripts in benchmarks/ and scripts/, read from their argparse calls."""
    paths = [*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "scripts").glob("*.py")]
    text = "\n".join(p.read_text(encoding="utf-8") for p in paths)
    return set(re.findall(r'add_argument\(\s*"(--[a-z0-9-]+)"', text))


#: One guide per workflow (issue 7), each listed in docs/guides/README.md.
GUIDE_NAMES = ["segment-2d", "zstack-timelapse", "refine", "fine-tune", "batch", "clustering"]


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def _cli_options() -> set[str]:
    options: set[str] = set()
    for action in build_parser()._actions:
        options.update(o for o in action.option_strings if o.startswith("--"))  # --version
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                for a in sub._actions:
                    options.update(o for o in a.option_strings if o.startswith("--"))
    return options


def test_every_cli_option_named_in_the_docs_exists() -> None:
    known = _cli_options() | FOREIGN | _script_options()
    named = {
        opt: _name(page)
        for page in PAGES
        for opt in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", page.read_text(encoding="utf-8"))
    }
    unknown = {opt: page for opt, page in named.items() if opt not in known}
    assert not unknown, f"options named in the docs but not in the CLI: {unknown}"
    assert {"--clusters", "--instances", "--scheduler", "--steps"} <= set(named)


def test_every_image_the_docs_link_to_exists() -> None:
    missing = []
    for page in PAGES:
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text(encoding="utf-8")):
            if not (page.parent / target).is_file():
                missing.append(f"{_name(page)}: {target}")
    assert not missing, missing
    assert any((ROOT / "docs" / "images").glob("*.png"))


def _anchor(heading: str) -> str:
    """GitHub's id for a Markdown heading: lower case, punctuation dropped, spaces -> hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {_anchor(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def test_every_relative_link_in_the_docs_leads_somewhere() -> None:
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{_name(page)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{_name(page)}: {target} (no such heading)")
    assert not broken, broken


def test_one_guide_per_workflow_listed_in_the_index() -> None:
    index = (GUIDES / "README.md").read_text(encoding="utf-8")
    for name in GUIDE_NAMES:
        assert (GUIDES / f"{name}.md").is_file(), name
        assert f"({name}.md)" in index, f"{name}.md is not linked from docs/guides/README.md"
    for page in (ROOT / "README.md", DOCS / "getting-started.md"):
        assert "guides/README.md" in page.read_text(encoding="utf-8"), f"{page.name} does not link the guides"


def _python_blocks() -> list[tuple[str, str]]:
    blocks = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for i, code in enumerate(re.findall(r"```python\n(.*?)```", text, flags=re.S)):
            if not code.lstrip().startswith(">>>"):
                blocks.append((f"{_name(page)}#{i}", code))
    return blocks


@pytest.mark.slow
@pytest.mark.parametrize(("where", "code"), _python_blocks(), ids=[w for w, _ in _python_blocks()])
def test_python_examples_in_the_docs_run(
    where: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each snippet runs in a folder of its own: its ``tempfile.mkdtemp()`` folders and
    relative paths land under pytest's ``tmp_path``, so nothing is left behind."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    exec(compile(code, where, "exec"), {"__name__": "__docs__"})
    if "mkdtemp" in code:  # its folders went to tmp_path, which pytest cleans up
        assert any(p.is_dir() for p in tmp_path.iterdir()), where


def test_pages_with_commands_say_which_environment_runs_them() -> None:
    """``napari-dem ...`` only works in the environment it was installed in (issue 13)."""
    silent = [
        _name(page)
        for page in PAGES
        if re.search(r"^napari-dem (segment|fine-tune|cluster)", page.read_text(encoding="utf-8"), re.M)
        and ".venv/bin/activate" not in page.read_text(encoding="utf-8")
    ]
    assert not silent, f"these pages run napari-dem but never say to activate .venv: {silent}"


# ------------------------------------------------------------------ numbers taken from the code
def _auto_3d_depth() -> int:
    """The smallest Z (and Y, X) for which ``mode="auto"`` picks 3D, from the code itself."""
    from napari_dem.core.layout import parse_axes
    from napari_dem.core.segment import choose_mode

    for depth in range(2, 64):
        if choose_mode(parse_axes("ZYX", (depth, 64, 64)), "auto", None) == "3d":
            return depth
    raise AssertionError("auto never picks 3D")


def test_auto_mode_threshold_in_the_docs_is_the_codes() -> None:
    depth = _auto_3d_depth()
    pages = [DOCS / "method.md", DOCS / "reference.md", GUIDES / "zstack-timelapse.md"]
    claims = []
    for page in pages:
        text = " ".join(page.read_text(encoding="utf-8").split())
        claims += [(page.name, int(n)) for n in re.findall(r"(\d+) (?:or more )?(?:slices|frames) on", text)]
        claims += [(page.name, int(n)) for n in re.findall(r"(\d+) or more slices", text)]
        claims += [(page.name, int(n)) for n in re.findall(r"all have at least (\d+) pixels", text)]
    assert len(claims) >= 3, claims
    assert all(n == depth for _, n in claims), f"auto picks 3D from {depth}, the docs say {claims}"


def test_menu_and_sample_names_in_the_docs_are_the_manifests() -> None:
    import yaml

    manifest = yaml.safe_load((ROOT / "napari.yaml").read_text(encoding="utf-8"))
    menu = manifest["display_name"]
    samples = {s["display_name"] for s in manifest["contributions"]["sample_data"]}
    widgets = {w["display_name"] for w in manifest["contributions"]["widgets"]}
    wrong = []
    for page in PAGES:
        text = " ".join(page.read_text(encoding="utf-8").split())
        for where, name in re.findall(r"(Plugins|Open Sample) › ([^›*]+?)(?: ›|\*)", text):
            if name != menu and not name.startswith("Install/Uninstall"):  # napari's own item
                wrong.append(f"{_name(page)}: {where} › {name}")
        for name in re.findall(r"Open Sample › [^›*]+? › ([^*]+?)\*", text):
            if name not in samples:
                wrong.append(f"{_name(page)}: sample {name!r}")
        for name in re.findall(r"Plugins › [^›*]+? › ([^*]+?)\*", text):
            if name not in widgets:
                wrong.append(f"{_name(page)}: widget {name!r}")
    assert not wrong, wrong


def test_train_settings_defaults_in_the_fine_tune_guide_are_the_codes() -> None:
    import dataclasses

    from napari_dem.core.train import TrainSettings

    text = " ".join((GUIDES / "fine-tune.md").read_text(encoding="utf-8").split())
    missing = [
        f"{f.name}={getattr(TrainSettings(), f.name)!r}"
        for f in dataclasses.fields(TrainSettings)
        if f"`{f.name}={getattr(TrainSettings(), f.name)!r}`" not in text
    ]
    assert not missing, f"docs/guides/fine-tune.md does not give these TrainSettings defaults: {missing}"


def test_safe_output_name_example_in_the_batch_guide_is_the_codes() -> None:
    from napari_dem._widgets.batch import safe_stem

    text = " ".join((GUIDES / "batch.md").read_text(encoding="utf-8").split())
    (layer, out), *_ = re.findall(r"\(`([^`]+)` gives `([^`]+)_labels\.zarr`\)", text)
    assert safe_stem(layer) == out


# ------------------------------------------------------------------ screenshots
def _screenshot_module():
    import importlib.util
    import sys

    sys.path.insert(0, str(DOCS))  # make_screenshots imports make_scribble_figure beside it
    spec = importlib.util.spec_from_file_location("make_screenshots", DOCS / "make_screenshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_image_in_docs_images_has_a_generator() -> None:
    figures = _screenshot_module().FIGURES
    made = {name for fn in figures.values() for name in re.findall(r"[\w-]+\.png", fn.__doc__.split(":")[0])}
    images = {p.name for p in (DOCS / "images").glob("*.png")}
    assert images <= made, f"no generator in docs/make_screenshots.py for {sorted(images - made)}"


def test_auto_k_numbers_in_the_method_page_are_the_codes() -> None:
    from napari_dem.core import select

    text = " ".join((DOCS / "method.md").read_text(encoding="utf-8").split())
    said = re.search(
        r"mixture with (\d+) components .*? dips below ([\d.]+) of the lower one; K is at most (\d+)", text
    )
    assert said, "docs/method.md no longer states the auto-K rule's numbers"
    assert (int(said[1]), float(said[2]), int(said[3])) == (
        select.DENSITY_COMPONENTS,
        select.DIP_RATIO,
        select.MAX_AUTO_K,
    )
