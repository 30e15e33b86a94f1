"""Loading task registries from entry points and modules (real imports from a temp dir)."""

from __future__ import annotations

import textwrap
import uuid
from importlib.metadata import EntryPoint

import pytest

from conveyor_worker.discovery import ENTRY_POINT_GROUP, collect, registries_in
from conveyor_worker.errors import DuplicateTaskError, TaskDiscoveryError
from conveyor_worker.registry import TaskRegistry

MODULE = """
from pydantic import BaseModel
from conveyor_worker import TaskRegistry

class In(BaseModel):
    x: int

{registry_name} = TaskRegistry()

@{registry_name}.task("{task}")
def run(args: In) -> int:
    return args.x
"""


@pytest.fixture
def make_module(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(task: str, registry_name: str = "registry", source: str | None = None) -> str:
        name = f"tasks_{uuid.uuid4().hex[:8]}"
        text = (
            source if source is not None else MODULE.format(task=task, registry_name=registry_name)
        )
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
        return name

    return make


def entry_point(value: str, name: str = "team") -> EntryPoint:
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def test_builtins_are_always_there():
    registry = collect(entry_point_list=[])
    assert {"echo", "sleep", "fail", "http.request"} <= set(registry.names())


def test_module_setting_adds_its_registry(make_module):
    module = make_module("team.one")
    registry = collect(task_modules=[module], entry_point_list=[])
    assert "team.one" in registry
    task = registry["team.one"]
    assert task.call(task.parse_args({"x": 5}), None) == 5  # type: ignore[arg-type]


def test_module_with_a_differently_named_registry(make_module):
    module = make_module("team.two", registry_name="tasks")
    assert "team.two" in collect(task_modules=[module], entry_point_list=[])


def test_entry_point_to_object_or_module(make_module):
    first = make_module("ep.object")
    second = make_module("ep.module")
    registry = collect(
        entry_point_list=[entry_point(f"{first}:registry", "a"), entry_point(second, "b")]
    )
    assert {"ep.object", "ep.module"} <= set(registry.names())


def test_same_registry_through_two_routes_counts_once(make_module):
    module = make_module("team.once")
    registry = collect(task_modules=[module], entry_point_list=[entry_point(f"{module}:registry")])
    assert registry.names().count("team.once") == 1


def test_duplicate_names_across_sources_stop_start_up(make_module):
    one, two = make_module("team.clash"), make_module("team.clash")
    with pytest.raises(DuplicateTaskError, match=r"team\.clash"):
        collect(task_modules=[one, two], entry_point_list=[])


def test_shadowing_a_builtin_is_a_duplicate(make_module):
    module = make_module("echo")
    with pytest.raises(DuplicateTaskError, match="echo"):
        collect(task_modules=[module], entry_point_list=[])


def test_missing_module_is_a_clear_error():
    with pytest.raises(TaskDiscoveryError, match="no_such_module_here"):
        collect(task_modules=["no_such_module_here"], entry_point_list=[])


def test_module_without_registry_is_an_error(make_module):
    module = make_module("", source="X = 1\n")
    with pytest.raises(TaskDiscoveryError, match="defines no TaskRegistry"):
        collect(task_modules=[module], entry_point_list=[])


def test_entry_point_to_something_else_is_an_error(make_module):
    module = make_module("", source="registry = 'not a registry'\nX = 1\n")
    with pytest.raises(TaskDiscoveryError, match="expected a TaskRegistry"):
        collect(entry_point_list=[entry_point(f"{module}:X")])


def test_registries_in_accepts_a_registry_object():
    registry = TaskRegistry()
    assert registries_in(registry, source="test") == [registry]
