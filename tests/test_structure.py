"""The package map holds (docs/architecture.md): the media layer imports no application
feature, and only the aiortc adapter touches aiortc.

Read from the source (every import statement, also those inside functions and under
``TYPE_CHECKING``) and checked at run time (what importing every ``sfu`` module loads).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: what the media layer (sfu/) must never import
ABOVE_SFU = ("classroom", "recorder", "signalling", "whiteboard", "scheduler_bridge",
             "transcription", "cluster")
#: the one module that may import aiortc (sfu.transport: the aiortc adapter)
AIORTC_ADAPTER = "sfu/transport.py"


def imported_modules(path: Path) -> set[str]:
    """Absolute module names imported by a Python file (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found.add(node.module)
    return found


def top(module: str) -> str:
    return module.split(".")[0]


def test_imported_modules_reads_relative_and_nested_imports(tmp_path: Path) -> None:
    """The checker itself: it sees imports in functions and resolves relative ones (so the
    tests below cannot pass by not looking)."""
    sample = ROOT / "sfu" / "room.py"
    modules = imported_modules(sample)
    assert "sfu.participant" in modules  # from .participant import ...
    assert "events" in modules
    tree = ast.parse("def f():\n    from classroom import polls\n")
    assert any(isinstance(n, ast.ImportFrom) and n.module == "classroom" for n in ast.walk(tree))


def test_sfu_imports_no_application_package() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path)
                                            if top(m) in ABOVE_SFU)
        for path in sorted((ROOT / "sfu").rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_all_of_sfu_loads_no_application_package() -> None:
    modules = sorted(f"sfu.{p.stem}" for p in (ROOT / "sfu").glob("*.py")
                     if p.stem not in ("__init__", "__main__", "fastpath_build"))
    code = (f"import importlib, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
            f"print(sorted({{n.split('.')[0] for n in sys.modules}} & set({ABOVE_SFU!r})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_only_the_transport_adapter_imports_aiortc() -> None:
    users = sorted(
        str(path.relative_to(ROOT))
        for package in ("sfu", "signalling", "classroom", "recorder", "whiteboard", "events")
        for path in (ROOT / package).rglob("*.py")
        if any(top(m) == "aiortc" for m in imported_modules(path))
    )
    assert users == [AIORTC_ADAPTER]
