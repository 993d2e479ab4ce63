"""The widget modules do not import each other: what they share lives in private modules
(``_common``, ``_jobs``, ``_runs``, ``_session``), so there is no import circle and no
state hidden in one widget that another reads."""

from __future__ import annotations

import ast
from pathlib import Path

import napari_dem._widgets as widgets_pkg

WIDGETS = Path(widgets_pkg.__file__).parent
#: Widget-to-widget imports allowed: none.
KNOWN: set[tuple[str, str]] = set()


def _imported_widget_modules(path: Path, public: set[str]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1:
                names = [module] if module else [a.name for a in node.names]
            elif module.startswith("napari_dem._widgets"):
                rest = module.removeprefix("napari_dem._widgets").lstrip(".")
                names = [rest] if rest else [a.name for a in node.names]
            else:
                continue
        elif isinstance(node, ast.Import):
            names = [
                a.name.removeprefix("napari_dem._widgets.")
                for a in node.names
                if a.name.startswith("napari_dem._widgets.")
            ]
        else:
            continue
        found |= {n.split(".")[0] for n in names} & public
    return found


def test_no_widget_module_imports_another() -> None:
    public = {p.stem for p in WIDGETS.glob("*.py") if not p.stem.startswith("_")}
    assert {"segment", "refine", "finetune", "batch"} <= public
    edges = {
        (p.stem, other)
        for p in WIDGETS.glob("*.py")
        if p.stem in public
        for other in _imported_widget_modules(p, public - {p.stem})
    }
    assert edges <= KNOWN, f"widget modules import each other: {sorted(edges - KNOWN)}"


def test_private_modules_import_no_widget_module() -> None:
    public = {p.stem for p in WIDGETS.glob("*.py") if not p.stem.startswith("_")}
    for path in WIDGETS.glob("_*.py"):
        if path.stem == "__init__":
            continue
        assert not _imported_widget_modules(path, public), path.name
