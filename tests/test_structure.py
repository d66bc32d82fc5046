"""The shape of the package: its import graph has no circle, and dependencies point down.

Read from the source with ``ast`` (nothing is imported), function-level imports included:
an import that only dodges a circle at run time is still a circle.  Imports under
``if TYPE_CHECKING:`` are left out, as they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "staste"

#: Modules that must import neither Django, nor Redis, nor a module that does.
PURE = ("staste.keys", "staste.timescale", "staste.histogram", "staste.measures")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py") if "migrations" not in path.parts}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class Imports(ast.NodeVisitor):
    """Every import of one module: (imported module, line, at module level?)."""

    def __init__(self, name: str, is_package: bool) -> None:
        self.package = name if is_package else name.rpartition(".")[0]
        self.found: list[tuple[str, int, bool]] = []
        self.depth = 0

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def _nested(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _nested

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, node.lineno, self.depth == 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            target = submodule if submodule in MODULES else source
            self.found.append((target, node.lineno, self.depth == 0))


def imports_of(name: str) -> list[tuple[str, int, bool]]:
    path = MODULES[name]
    visitor = Imports(name, path.name == "__init__.py")
    visitor.visit(ast.parse(path.read_text(), str(path)))
    return visitor.found


def graph() -> dict[str, set[str]]:
    return {
        name: {target for target, _, _ in imports_of(name) if target in MODULES and target != name} for name in MODULES
    }


def find_circle(edges: dict[str, set[str]]) -> list[str] | None:
    """One circle of ``edges`` (as the list of its modules, first repeated last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_finder_sees_a_circle_through_a_function_level_import() -> None:
    # The check itself must be able to fail: a deferred import closing a loop is found.
    source = "import staste.query\n\ndef later():\n    from staste import keys\n    from . import conf\n"
    visitor = Imports("staste.charts.spec", False)
    visitor.visit(ast.parse(source))
    assert visitor.found == [("staste.query", 1, True), ("staste.keys", 4, False), ("staste.charts", 5, False)]
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_import_graph_has_no_circle() -> None:
    edges = graph()
    assert "staste.metrica" in edges["staste.registration"]  # the graph is really read
    assert find_circle(edges) is None, " -> ".join(find_circle(edges) or [])


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_import_neither_django_nor_redis(name: str) -> None:
    edges = graph()
    reached, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in reached:
            continue
        reached.add(current)
        for target, _, _ in imports_of(current):
            assert not target.startswith(("django", "redis")), f"{name} reaches {target} through {current}"
        todo.extend(edges[current])


def test_every_deferred_import_says_why() -> None:
    """An import inside a function is the exception (Django's app loading): it says why, in a comment."""
    silent = []
    for name, path in MODULES.items():
        lines = path.read_text().splitlines()
        for target, line, top in imports_of(name):
            if top or not target.startswith("staste"):
                continue
            # The reason stands on the line, or in a comment just above its block of imports.
            start = line - 1
            while start > 0 and lines[start - 1].strip().startswith(("from ", "import ")):
                start -= 1
            if "#" not in lines[line - 1] and not (start > 0 and lines[start - 1].strip().startswith("#")):
                silent.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {lines[line - 1].strip()}")
    assert not silent, "deferred imports without a reason:\n" + "\n".join(sorted(set(silent)))


def test_a_metrica_forwards_every_query_method() -> None:
    """No MetricaValues method can be forgotten: it is forwarded, or said not to be."""
    from staste.metrica import AVERAGED_QUERY_METHODS, NOT_FORWARDED, QUERY_METHODS, AveragedMetrica, Metrica
    from staste.query import MetricaValues

    public = {name for name, value in vars(MetricaValues).items() if callable(value) and not name.startswith("_")}
    listed = set(QUERY_METHODS) | set(AVERAGED_QUERY_METHODS)
    assert public - listed - NOT_FORWARDED == set(), "add them to metrica.QUERY_METHODS"
    assert listed | NOT_FORWARDED <= public
    for name in QUERY_METHODS:
        assert getattr(Metrica, name).__doc__ == getattr(MetricaValues, name).__doc__
    for name in AVERAGED_QUERY_METHODS:
        assert hasattr(AveragedMetrica, name) and not hasattr(Metrica, name)


def test_type_checkers_see_every_forwarded_query_method() -> None:
    """The forwarding loop is invisible to mypy: each class declares its forwarded methods again
    under TYPE_CHECKING (so ``metrica.filter(...).total()`` type-checks in users' code, py.typed
    ships); those declarations must name exactly what the loop sets."""
    from staste.metrica import AVERAGED_QUERY_METHODS, QUERY_METHODS

    tree = ast.parse((PACKAGE / "metrica.py").read_text(encoding="utf-8"))
    declared: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            blocks = [n for n in node.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
            declared[node.name] = [t.id for b in blocks for a in b.body if isinstance(a, ast.Assign) for t in a.targets]
    assert declared["Metrica"] == list(QUERY_METHODS)
    assert declared["AveragedMetrica"] == list(AVERAGED_QUERY_METHODS)


def test_a_coroutine_method_is_forwarded_as_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import inspect

    from staste import metrica as metrica_module
    from staste.query import MetricaValues

    async def aspan(self: MetricaValues, extra: int) -> tuple[object, int]:
        return self.span, extra

    monkeypatch.setattr(MetricaValues, "aspan", aspan, raising=False)
    forward = metrica_module._forwarded("aspan")
    assert inspect.iscoroutinefunction(forward)
    found = metrica_module.Metrica("forwarding")
    assert asyncio.run(forward(found, extra=3)) == ((), 3)


def test_a_changed_setting_reaches_every_derived_cache(settings) -> None:
    """One setting_changed receiver (conf.on_config_change) clears them all: key prefixes, the
    spans of a kick made now, checked axis values."""
    import datetime

    from staste.axis import StoredChoiceAxis
    from staste.metrica import Metrica

    metrica = Metrica("cached_things", axes=[("v", StoredChoiceAxis())])
    settings.STASTE_METRICS_PREFIX = "before"
    settings.STASTE_TIME_ZONE = "UTC"
    assert metrica.base == "before:{cached_things}:"
    utc_minute = metrica.prepare_kick(v="x").spans[-1]
    settings.STASTE_METRICS_PREFIX = "after"
    settings.STASTE_TIME_ZONE = "Asia/Kolkata"  # UTC+05:30: another hour and minute
    assert metrica.base == "after:{cached_things}:"
    kolkata_minute = metrica.prepare_kick(v="x").spans[-1]
    expected = datetime.datetime(*utc_minute) + datetime.timedelta(hours=5, minutes=30)
    assert kolkata_minute in (
        (*expected.timetuple()[:5],),
        (*(expected + datetime.timedelta(minutes=1)).timetuple()[:5],),
    )
    metrica.prepare_kick(v="xx")  # checked, and remembered...
    settings.STASTE_MAX_VALUE_LENGTH = 1
    with pytest.raises(ValueError, match="at most 1"):  # ...until a setting changes
        metrica.prepare_kick(v="xx")


#: The read side, bottom up: each layer imports only the layers below it (at run time), so the
#: query API, the read engine, the budget and the kinds of read stay apart.
READ_LAYERS = ("staste.reads", "staste.budget", "staste.roundtrip", "staste.measures", "staste.query")


@pytest.mark.parametrize("name", READ_LAYERS)
def test_the_read_layers_point_down(name: str) -> None:
    above = set(READ_LAYERS[READ_LAYERS.index(name) + 1 :])
    reaching = {target for target, _, _ in imports_of(name)}
    assert not reaching & above, f"{name} imports {sorted(reaching & above)}, a layer above it"
    # the core stays free of Django's translation machinery: pages say things (staste.refusals)
    assert not any(target.startswith("django.utils.translation") for target in reaching), name
    docstring = ast.get_docstring(ast.parse(MODULES[name].read_text()))
    assert docstring and len(docstring.splitlines()[0]) > 20, f"{name} says its one job in its docstring"


def test_every_awaited_query_method_runs_the_plan_of_its_sync_twin() -> None:
    """``atotal`` is ``_plan_total(...).arun()`` where ``total`` is ``_plan_total(...).run()``:
    the async API shares every plan (and so every validation and decoding) with the sync one."""
    from staste.query import MetricaValues

    tree = ast.parse(MODULES["staste.query"].read_text())
    (values,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "MetricaValues"]

    def plans(method: ast.AST, runner: str) -> set[str]:
        return {
            call.func.value.func.attr
            for call in ast.walk(method)
            if isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == runner
            and isinstance(call.func.value, ast.Call)
            and isinstance(call.func.value.func, ast.Attribute)
            and call.func.value.func.attr.startswith("_plan_")
        }

    methods = {node.name: node for node in values.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    awaited = [name for name, node in methods.items() if isinstance(node, ast.AsyncFunctionDef)]
    assert len(awaited) >= 15  # the async API is really read
    for name in awaited:
        twin = name.removeprefix("a")
        assert twin in methods and callable(getattr(MetricaValues, twin)), name
        assert plans(methods[name], "arun"), f"{name} runs no plan"
        assert plans(methods[name], "arun") == plans(methods[twin], "run"), f"{name} and {twin} run other plans"
