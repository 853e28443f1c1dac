"""The platform's layers: the shared kernel (platform/kernel/) sits below the apps and imports
none of them nor the project shell (platform/miliao/); the apps import each other without a
cycle (Celery tasks and signals cross the other way by name, not by import); each app's rules
live in its rules.py. The import graph is grimp's, built from every module of platform/."""
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


def _functions(path: Path):
    return [node for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _raises(function, name: str) -> bool:
    return any(isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
               and isinstance(node.exc.func, ast.Name) and node.exc.func.id == name
               for node in ast.walk(function))


def test_permission_rules_live_in_each_apps_rules_module():
    """A rule (`check_*` that refuses, `visible_*` that scopes a read) lives in its app's
    rules.py, beside that app's enums; accounts/permissions.py keeps only DRF's permission
    classes and the role primitives are in kernel/roles.py."""
    misplaced = []
    for path in PLATFORM.rglob("*.py"):
        if path.name == "rules.py" or path.parent.name in ("kernel", "migrations"):
            continue
        for function in _functions(path):
            if function.name.startswith("check_") and _raises(function, "Refused"):
                misplaced.append(f"{path.relative_to(PLATFORM)}:{function.name}")
    assert misplaced == []
    drf = ast.parse((PLATFORM / "accounts" / "permissions.py").read_text())
    assert [n.name for n in drf.body if isinstance(n, ast.FunctionDef)] == []
    assert {n.name for n in drf.body if isinstance(n, ast.ClassDef)} == {"OpenCatalogReadable", "AuditorsReadOnly"}
    apps = {p.parent.name for p in PLATFORM.glob("*/rules.py")}
    assert {"accounts", "access", "budgets", "catalog", "defense", "federation", "innovation", "jobs",
            "progress", "provenance", "releases"} <= apps


def test_rules_compare_with_their_apps_enums_not_raw_strings():
    """`dataset.data_class == DataClass.OPEN`, not `== "open"`: a renamed value then fails at
    import, not silently in a rule."""
    raw = []
    for path in [*PLATFORM.glob("*/rules.py"), PLATFORM / "kernel" / "roles.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                if any(isinstance(o, ast.Constant) and isinstance(o.value, str) for o in operands):
                    raw.append(f"{path.relative_to(PLATFORM)}:{node.lineno}")
    assert raw == []


def _app_graph():
    """Which platform package imports which (any module of one importing any module of the
    other, function bodies included), as grimp finds it."""
    import sys

    import grimp

    packages = sorted(_platform_packages())
    if str(PLATFORM) not in sys.path:
        sys.path.insert(0, str(PLATFORM))
    graph = grimp.build_graph(*packages, include_external_packages=False)
    return {a: {b for b in packages if a != b and graph.direct_import_exists(importer=a, imported=b, as_packages=True)}
            for a in packages}, graph


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected parts of more than one package (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_apps_import_each_other_without_a_cycle():
    edges, _graph = _app_graph()
    assert edges["kernel"] == set()
    # The graph is real: the shell wires every app, and the apps lean on the ones below.
    assert edges["miliao"] >= {"accounts", "releases", "jobs", "portal", "discovery"}
    assert {"catalog", "corpora"} <= edges["releases"] and "innovation" in edges["jobs"]
    assert _cycles(edges) == []


def test_the_cycle_check_finds_a_cycle():
    """The check above can fail: a graph with one back edge is one cycle."""
    edges = {"kernel": set(), "catalog": {"kernel"}, "releases": {"catalog", "kernel"}}
    assert _cycles(edges) == []
    edges["catalog"].add("releases")
    assert _cycles(edges) == [["catalog", "releases"]]


def test_the_layers_from_the_kernel_up():
    """Each package imports only packages of the layers below it, and the packages of one
    layer import none of each other:

    kernel < progress < provenance < accounts < catalog < corpora <
    releases, budgets, federation, innovation < access < defense, jobs, discovery < portal < miliao.

    Progress (tracked tasks) sits below the event log, which tracks its own verification as a
    task; a lost task reaches the log by signal (provenance/receivers.py)."""
    edges, graph = _app_graph()
    layers = [("kernel",), ("progress",), ("provenance",), ("accounts",), ("catalog",), ("corpora",),
              ("releases", "budgets", "federation", "innovation"), ("access",), ("defense", "jobs", "discovery"),
              ("portal",), ("miliao",)]
    assert {p for layer in layers for p in layer} == set(edges)
    illegal = graph.find_illegal_dependencies_for_layers(layers=[set(layer) for layer in reversed(layers)])
    assert sorted(f"{d.importer} -> {d.imported}" for d in illegal) == []


def test_celery_tasks_are_thin_shims_over_their_apps_worker_code():
    """A task module says which task runs what: its functions import the work (worker.py,
    runner.py, scoring.py, an action) and call it, holding no work of their own."""
    heavy = {}
    for path in PLATFORM.glob("*/tasks.py"):
        for function in ast.parse(path.read_text()).body:
            if not isinstance(function, ast.FunctionDef):
                continue
            body = [node for node in function.body if not isinstance(node, (ast.Import, ast.ImportFrom))
                    and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
            nested = [n for n in ast.walk(function) if n is not function
                      and isinstance(n, (ast.FunctionDef, ast.Lambda, ast.For, ast.While, ast.Try))]
            if len(body) > 2 or nested:
                heavy[f"{path.parent.name}.{function.name}"] = len(body)
    assert len(list(PLATFORM.glob("*/tasks.py"))) >= 7
    assert heavy == {}


def test_the_portal_takes_read_models_from_queries_not_from_an_apps_api():
    """What the API and the portal both show is read in the app's queries.py; from an app's
    api.py the portal takes serializers (to parse a form as the API does) and constants only."""
    taken = []
    for path in (PLATFORM / "portal").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.endswith(".api"):
                taken += [f"{path.name}: {node.module}.{a.name}" for a in node.names
                          if not (a.name.endswith("Serializer") or a.name.isupper())]
    assert taken == []
