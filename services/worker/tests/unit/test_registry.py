from __future__ import annotations

import pytest
from pydantic import BaseModel, Field, ValidationError

from conveyor_common import limits
from conveyor_common.catalog import TaskDefaults
from conveyor_worker import (
    DuplicateTaskError,
    JobContext,
    TaskRegistrationError,
    TaskRegistry,
)
from conveyor_worker.registry import NoInput


class ResizeInput(BaseModel):
    url: str
    width: int = Field(gt=0)


def ctx(attempt: int = 1) -> JobContext:
    return JobContext(
        job_id="0190d6c2-0000-7000-8000-000000000001", tenant_id="acme", attempt=attempt
    )


def test_task_is_registered_with_defaults_schema_and_docstring():
    registry = TaskRegistry()

    @registry.task("images.resize", queue="images", timeout_seconds=120, max_attempts=5)
    def resize(args: ResizeInput, ctx: JobContext) -> dict[str, int]:
        """Resizes an image.

        More words."""
        return {"width": args.width, "attempt": ctx.attempt}

    task = registry["images.resize"]
    assert task.defaults == TaskDefaults(queue="images", timeout_seconds=120, max_attempts=5)
    descriptor = task.descriptor()
    assert descriptor.name == "images.resize"
    assert descriptor.description == "Resizes an image.\n\nMore words."
    assert descriptor.input_schema == ResizeInput.model_json_schema()
    assert descriptor.input_schema["required"] == ["url", "width"]
    # The decorator hands back the plain function.
    assert resize(ResizeInput(url="u", width=3), ctx(2)) == {"width": 3, "attempt": 2}
    assert task.call(task.parse_args({"url": "u", "width": 4}), ctx(7)) == {
        "width": 4,
        "attempt": 7,
    }


def test_defaults_when_not_given():
    registry = TaskRegistry()

    @registry.task()
    def plain(args: ResizeInput) -> None:
        pass

    task = registry["plain"]
    assert task.defaults == TaskDefaults()
    assert task.defaults.queue == "default"
    assert task.description == ""
    assert registry.queues() == ["default"]


def test_context_may_come_first_and_input_may_be_absent():
    registry = TaskRegistry()

    @registry.task("ctx.first")
    def ctx_first(c: JobContext, args: ResizeInput) -> str:
        return f"{c.tenant_id}:{args.width}"

    @registry.task("no.input")
    def no_input() -> int:
        return 1

    @registry.task("ctx.only")
    def ctx_only(c: JobContext) -> int:
        return c.attempt

    first = registry["ctx.first"]
    assert first.call(first.parse_args({"url": "u", "width": 2}), ctx()) == "acme:2"
    none = registry["no.input"]
    assert none.input_model is NoInput
    assert none.call(none.parse_args({}), ctx()) == 1
    with pytest.raises(ValidationError):
        none.parse_args({"unexpected": 1})
    only = registry["ctx.only"]
    assert only.call(only.parse_args({}), ctx(4)) == 4


def test_async_function_runs_to_completion():
    registry = TaskRegistry()

    @registry.task("double")
    async def double(args: ResizeInput) -> int:
        return args.width * 2

    task = registry["double"]
    assert task.is_async
    assert task.call(task.parse_args({"url": "u", "width": 21}), ctx()) == 42


def test_duplicate_names_are_refused():
    registry = TaskRegistry()

    @registry.task("same")
    def one(args: ResizeInput) -> None:
        pass

    with pytest.raises(DuplicateTaskError, match="'same' is defined twice"):

        @registry.task("same")
        def two(args: ResizeInput) -> None:
            pass

    other = TaskRegistry()

    @other.task("same")
    def three(args: ResizeInput) -> None:
        pass

    with pytest.raises(DuplicateTaskError, match="three"):
        registry.include(other)
    # Including the very same registry twice is not a conflict.
    registry.include(registry)
    assert len(registry) == 1


@pytest.mark.parametrize("name", ["", "has space", "1starts-with-digit", "x" * 201, "semi;colon"])
def test_invalid_task_names_are_refused(name):
    registry = TaskRegistry()
    with pytest.raises(TaskRegistrationError):
        registry.task(name)(lambda: None)


@pytest.mark.parametrize(
    "options",
    [
        {"queue": "bad queue"},
        {"timeout_seconds": limits.MAX_TIMEOUT_SECONDS + 1},
        {"timeout_seconds": 0},
        {"max_attempts": limits.MAX_ATTEMPTS_CEILING + 1},
    ],
)
def test_invalid_defaults_are_refused(options):
    registry = TaskRegistry()

    def fn(args: ResizeInput) -> None:
        pass

    with pytest.raises(TaskRegistrationError):
        registry.task("ok.name", **options)(fn)


def test_unannotated_or_odd_parameters_are_refused():
    registry = TaskRegistry()

    def unannotated(args) -> None:  # type: ignore[no-untyped-def]
        pass

    def not_a_model(args: dict) -> None:  # type: ignore[type-arg]
        pass

    def two_models(a: ResizeInput, b: ResizeInput) -> None:
        pass

    def keyword_only(*, args: ResizeInput) -> None:
        pass

    for fn in (unannotated, not_a_model, two_models, keyword_only):
        with pytest.raises(TaskRegistrationError):
            registry.task()(fn)
    assert len(registry) == 0
