"""The shared kernel (platform/kernel/: errors, input checks, state paths) sits below the
apps: it imports no app of the platform and not the project shell (platform/miliao/), so that
every app can import it without importing each other."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.foundation

PLATFORM = Path(__file__).resolve().parents[2] / "platform"


def _platform_packages() -> set[str]:
    return {p.parent.name for p in PLATFORM.glob("*/__init__.py")}


def _imported(path: Path) -> set[str]:
    """The top-level names of the absolute imports anywhere in a module (function bodies too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_kernel_imports_no_app_and_not_the_project_shell():
    packages = _platform_packages()
    assert {"kernel", "miliao", "accounts", "releases", "portal"} <= packages
    below = packages - {"kernel"}
    modules = sorted((PLATFORM / "kernel").glob("*.py"))
    assert {m.name for m in modules} >= {"errors.py", "inputs.py", "paths.py"}
    found = {m.name: sorted(_imported(m) & below) for m in modules}
    assert all(not names for names in found.values()), found


def test_the_apps_take_errors_and_inputs_from_the_kernel_only():
    """No module keeps importing the kernel's pieces from where they were (miliao.errors)."""
    stale = []
    for path in PLATFORM.rglob("*.py"):
        text = path.read_text()
        if "miliao.errors" in text or "miliao.inputs" in text:
            stale.append(str(path.relative_to(PLATFORM)))
    assert stale == []
