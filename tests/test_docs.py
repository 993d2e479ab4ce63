"""The documentation tells the truth: its CLI options exist, its images exist, its Python runs."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from napari_dem.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Options of other programs that the docs quote (pip, the benchmark scripts).
FOREIGN = {"--no-deps", "--frames", "--depths", "--files"}


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
        opt: page.name
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
                missing.append(f"{page.name}: {target}")
    assert not missing, missing
    assert any((ROOT / "docs" / "images").glob("*.png"))


def _python_blocks() -> list[tuple[str, str]]:
    blocks = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for i, code in enumerate(re.findall(r"```python\n(.*?)```", text, flags=re.S)):
            if not code.lstrip().startswith(">>>"):
                blocks.append((f"{page.name}#{i}", code))
    return blocks


@pytest.mark.parametrize(("where", "code"), _python_blocks(), ids=[w for w, _ in _python_blocks()])
def test_python_examples_in_the_docs_run(where: str, code: str) -> None:
    exec(compile(code, where, "exec"), {"__name__": "__docs__"})
