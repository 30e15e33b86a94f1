"""Finding the tasks a worker runs: the built-ins, every installed package's `conveyor.tasks`
entry points, and the modules named in `CONVEYOR_TASK_MODULES`.

An entry point or module names a `TaskRegistry` object, or a module that defines one (its
`registry` attribute, else every `TaskRegistry` at its top level). Two sources defining the same
task name stop the worker at start-up: running one of them silently would be worse.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

import structlog

from conveyor_worker import builtin
from conveyor_worker.builtin.http_request import HttpPolicy
from conveyor_worker.errors import TaskDiscoveryError
from conveyor_worker.registry import TaskRegistry

ENTRY_POINT_GROUP = "conveyor.tasks"
log = structlog.get_logger("conveyor.worker")


def registries_in(obj: object, *, source: str) -> list[TaskRegistry]:
    """The registries an entry point or module stands for."""
    if isinstance(obj, TaskRegistry):
        return [obj]
    if isinstance(obj, ModuleType):
        preferred = getattr(obj, "registry", None)
        if isinstance(preferred, TaskRegistry):
            return [preferred]
        found = [value for value in vars(obj).values() if isinstance(value, TaskRegistry)]
        if found:
            return list({id(r): r for r in found}.values())
        raise TaskDiscoveryError(f"{source}: module {obj.__name__} defines no TaskRegistry")
    raise TaskDiscoveryError(
        f"{source}: expected a TaskRegistry or a module, got {type(obj).__name__}"
    )


def load_entry_point(entry_point: EntryPoint) -> list[TaskRegistry]:
    source = f"entry point {entry_point.name!r} ({entry_point.value})"
    try:
        obj = entry_point.load()
    except Exception as exc:
        raise TaskDiscoveryError(f"{source} failed to load: {exc}") from exc
    return registries_in(obj, source=source)


def load_module(path: str) -> list[TaskRegistry]:
    source = f"task module {path!r}"
    try:
        module = importlib.import_module(path)
    except Exception as exc:
        raise TaskDiscoveryError(f"{source} failed to import: {exc}") from exc
    return registries_in(module, source=source)


def collect(
    *,
    http_policy: HttpPolicy | None = None,
    task_modules: Iterable[str] = (),
    entry_point_list: Iterable[EntryPoint] | None = None,
) -> TaskRegistry:
    """One registry holding every task; `DuplicateTaskError` if two define the same name."""
    merged = TaskRegistry()
    merged.include(builtin.build_registry(http_policy))
    seen: set[int] = set()
    eps = entry_points(group=ENTRY_POINT_GROUP) if entry_point_list is None else entry_point_list
    sources: list[tuple[str, list[TaskRegistry]]] = [
        (f"entry point {ep.name}", load_entry_point(ep)) for ep in eps
    ]
    sources += [(f"module {path}", load_module(path)) for path in task_modules]
    for source, registries in sources:
        for registry in registries:
            # The same registry reached twice (an entry point and a module setting) is one.
            if id(registry) in seen:
                continue
            seen.add(id(registry))
            merged.include(registry)
            log.info("worker.tasks_loaded", source=source, tasks=registry.names())
    return merged
