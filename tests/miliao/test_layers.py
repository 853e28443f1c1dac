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


def _local_imports(path: Path) -> set[str]:
    """The sibling modules a module imports relatively (`from . import x`, `from .x import y`)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names |= {node.module.split(".")[0]} if node.module else {alias.name for alias in node.names}
    return names


def test_the_jobs_runner_and_the_runs_it_hands_jobs_to_import_no_cycle():
    """The runner hands a job to code_jobs or federated; they take JobFailed and the outcome
    helpers from jobs/outcomes.py, not back from the runner."""
    jobs = PLATFORM / "jobs"
    graph = {p.stem: _local_imports(p) for p in jobs.glob("*.py")}
    assert {"code_jobs", "federated", "outcomes"} <= graph["runner"]

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    assert [m for m in ("code_jobs", "federated", "outcomes") if reaches(m, "runner", {m})] == []


def test_actions_dispatch_celery_tasks_by_name_and_never_import_a_tasks_module():
    """An app's tasks import its worker code, which imports its actions: actions that imported
    the tasks closed the loop. They send the task by its name (`progress.actions.by_name`)."""
    importing = {}
    for path in PLATFORM.glob("*/actions.py"):
        tree = ast.parse(path.read_text())
        names = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        names |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and not node.module
                  for alias in node.names}
        tasks = sorted(n for n in names if n == "tasks" or n.endswith(".tasks"))
        if tasks:
            importing[path.parent.name] = tasks
    assert importing == {}
