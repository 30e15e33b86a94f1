"""The task registry: plain functions, registered with a decorator, described for the catalog.

A task function takes a pydantic input model and, optionally, a `JobContext`, in either order,
by annotation::

    @registry.task("images.resize", queue="images", timeout_seconds=120, max_attempts=5)
    def resize(args: ResizeInput, ctx: JobContext) -> dict[str, int]: ...

The decorator returns the function unchanged, so it stays an ordinary function to test.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from conveyor_common import limits
from conveyor_common.catalog import TaskDefaults, TaskDescriptor
from conveyor_common.envelope import JobContext
from conveyor_worker.errors import DuplicateTaskError, TaskRegistrationError

F = TypeVar("F", bound=Callable[..., Any])
ParamKind = Literal["input", "context"]

# The same rules job-service applies to submitted names (conveyor_common.jobs.TaskName/QueueName).
_TASK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]*$")
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")


class NoInput(BaseModel):
    """Input model of a task whose function takes no arguments model."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True)
class RegisteredTask:
    name: str
    function: Callable[..., Any]
    input_model: type[BaseModel]
    description: str
    defaults: TaskDefaults
    params: tuple[ParamKind, ...]

    @property
    def origin(self) -> str:
        """Where the function is defined, for error messages."""
        module = getattr(self.function, "__module__", "?")
        return f"{module}.{getattr(self.function, '__qualname__', repr(self.function))}"

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.function)

    def descriptor(self) -> TaskDescriptor:
        return TaskDescriptor(
            name=self.name,
            description=self.description,
            input_schema=self.input_model.model_json_schema(),
            defaults=self.defaults,
        )

    def parse_args(self, raw: dict[str, Any]) -> BaseModel:
        """Validates raw JSON arguments; raises pydantic's `ValidationError`."""
        return self.input_model.model_validate(raw)

    def call(self, args: BaseModel, ctx: JobContext) -> Any:
        call_args = [args if kind == "input" else ctx for kind in self.params]
        if self.is_async:
            return asyncio.run(self.function(*call_args))
        return self.function(*call_args)


def _classify_params(function: Callable[..., Any]) -> tuple[type[BaseModel], tuple[ParamKind, ...]]:
    try:
        hints = typing.get_type_hints(function)
    except Exception as exc:  # unresolvable forward references, mostly
        raise TaskRegistrationError(
            f"cannot resolve the annotations of {function!r}: {exc}"
        ) from exc
    input_model: type[BaseModel] | None = None
    kinds: list[ParamKind] = []
    for param in inspect.signature(function).parameters.values():
        if param.kind not in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            raise TaskRegistrationError(
                f"{function.__qualname__}: parameter {param.name!r} must be positional"
            )
        hint = hints.get(param.name)
        if inspect.isclass(hint) and issubclass(hint, JobContext):
            if "context" in kinds:
                raise TaskRegistrationError(f"{function.__qualname__}: two JobContext parameters")
            kinds.append("context")
        elif inspect.isclass(hint) and issubclass(hint, BaseModel):
            if input_model is not None:
                raise TaskRegistrationError(f"{function.__qualname__}: two input models")
            input_model = hint
            kinds.append("input")
        else:
            raise TaskRegistrationError(
                f"{function.__qualname__}: parameter {param.name!r} must be annotated with a "
                "pydantic model (the task's input) or JobContext"
            )
    return input_model or NoInput, tuple(kinds)


def make_task(
    function: Callable[..., Any],
    *,
    name: str | None = None,
    queue: str = "default",
    timeout_seconds: int = limits.DEFAULT_TIMEOUT_SECONDS,
    max_attempts: int = 3,
    description: str | None = None,
) -> RegisteredTask:
    task_name = name or function.__name__
    if len(task_name) > limits.MAX_NAME_LENGTH or not _TASK_NAME.match(task_name):
        raise TaskRegistrationError(f"invalid task name {task_name!r}")
    if len(queue) > limits.MAX_NAME_LENGTH or not _QUEUE_NAME.match(queue):
        raise TaskRegistrationError(f"task {task_name!r}: invalid queue name {queue!r}")
    try:
        defaults = TaskDefaults(
            queue=queue, timeout_seconds=timeout_seconds, max_attempts=max_attempts
        )
    except ValidationError as exc:
        raise TaskRegistrationError(f"task {task_name!r}: invalid defaults: {exc}") from exc
    input_model, params = _classify_params(function)
    return RegisteredTask(
        name=task_name,
        function=function,
        input_model=input_model,
        description=description if description is not None else inspect.getdoc(function) or "",
        defaults=defaults,
        params=params,
    )


class TaskRegistry:
    """An ordered set of tasks with unique names."""

    def __init__(self) -> None:
        self._tasks: dict[str, RegisteredTask] = {}

    def task(
        self,
        name: str | None = None,
        *,
        queue: str = "default",
        timeout_seconds: int = limits.DEFAULT_TIMEOUT_SECONDS,
        max_attempts: int = 3,
        description: str | None = None,
    ) -> Callable[[F], F]:
        """Registers the decorated function; the name defaults to the function's name and the
        description to its docstring."""

        def decorate(function: F) -> F:
            self.add(
                make_task(
                    function,
                    name=name,
                    queue=queue,
                    timeout_seconds=timeout_seconds,
                    max_attempts=max_attempts,
                    description=description,
                )
            )
            return function

        return decorate

    def add(self, task: RegisteredTask) -> None:
        existing = self._tasks.get(task.name)
        if existing is not None and existing is not task:
            raise DuplicateTaskError(
                f"task {task.name!r} is defined twice: by {existing.origin} and by {task.origin}"
            )
        self._tasks[task.name] = task

    def include(self, other: TaskRegistry) -> None:
        for task in other:
            self.add(task)

    def get(self, name: str) -> RegisteredTask | None:
        return self._tasks.get(name)

    def __getitem__(self, name: str) -> RegisteredTask:
        return self._tasks[name]

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[RegisteredTask]:
        return iter(self._tasks.values())

    def __len__(self) -> int:
        return len(self._tasks)

    def names(self) -> list[str]:
        return list(self._tasks)

    def queues(self) -> list[str]:
        """Every queue a task of this registry defaults to, in first-seen order."""
        return list(dict.fromkeys(task.defaults.queue for task in self))

    def descriptors(self) -> list[TaskDescriptor]:
        return [task.descriptor() for task in self]
