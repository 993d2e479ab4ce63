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
#: Options of other programs that the docs quote (pip, the benchmark scripts, dask worker).
FOREIGN = {"--no-deps", "--frames", "--depths", "--files", "--nthreads", "--dataset"}
#: One guide per workflow (issue 7), each listed in docs/guides/README.md.
GUIDE_NAMES = ["segment-2d", "zstack-timelapse", "refine", "fine-tune", "batch", "clustering"]


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def _cli_options() -> set[str]:
    options: set[str] = set()
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                for a in sub._actions:
                    options.update(o for o in a.option_strings if o.startswith("--"))
    return options


def test_every_cli_option_named_in_the_docs_exists() -> None:
    known = _cli_options() | FOREIGN
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
