from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from conveyor_common import limits
from conveyor_common.jobs import BatchCreate, JobCreate, json_depth


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_json_depth():
    assert json_depth(1) == 0
    assert json_depth({}) == 1
    assert json_depth([]) == 1
    assert json_depth({"a": [1, {"b": []}]}) == 4
    assert json_depth(nested(5)) == 5


def test_args_at_the_depth_limit_are_accepted_one_more_is_refused():
    assert JobCreate(task="echo", args=nested(limits.MAX_ARGS_DEPTH)).task == "echo"
    with pytest.raises(ValidationError, match="nested deeper"):
        JobCreate(task="echo", args=nested(limits.MAX_ARGS_DEPTH + 1))


def test_args_over_the_size_limit_are_refused():
    filler = "x" * (limits.MAX_ARGS_BYTES - len(json.dumps({"s": ""}, separators=(",", ":"))))
    assert JobCreate(task="echo", args={"s": filler})
    with pytest.raises(ValidationError, match="over the limit"):
        JobCreate(task="echo", args={"s": filler + "x"})


@pytest.mark.parametrize("field", ["status", "tenant_id", "attempts", "id"])
def test_server_owned_and_unknown_fields_are_refused(field):
    with pytest.raises(ValidationError, match="Extra inputs"):
        JobCreate.model_validate({"task": "echo", field: "x"})


@pytest.mark.parametrize(
    "body",
    [
        {"task": ""},
        {"task": "has space"},
        {"task": "x" * (limits.MAX_NAME_LENGTH + 1)},
        {"task": "echo", "queue": "bad queue"},
        {"task": "echo", "priority": limits.MAX_PRIORITY + 1},
        {"task": "echo", "max_attempts": 0},
        {"task": "echo", "timeout_seconds": limits.MAX_TIMEOUT_SECONDS + 1},
        {"task": "echo", "run_at": "2030-01-01T00:00:00"},  # no UTC offset
        {"task": "echo", "tags": ["t"] * (limits.MAX_TAGS + 1)},
        {"task": "echo", "tags": ["x" * (limits.MAX_TAG_LENGTH + 1)]},
        {"task": "echo", "metadata": {"k": "v" * (limits.MAX_METADATA_VALUE_LENGTH + 1)}},
        {"task": "echo", "metadata": {f"k{i}": "v" for i in range(limits.MAX_METADATA_KEYS + 1)}},
    ],
)
def test_limits_are_enforced(body):
    with pytest.raises(ValidationError):
        JobCreate.model_validate(body)


def test_a_valid_job_keeps_its_values():
    job = JobCreate.model_validate(
        {
            "task": "images.resize",
            "args": {"url": "u"},
            "queue": "images",
            "priority": 9,
            "run_at": "2030-01-01T00:00:00+02:00",
            "tags": ["a"],
            "metadata": {"k": "v"},
        }
    )
    assert job.run_at is not None
    assert job.run_at.utcoffset() is not None
    assert (job.queue, job.priority, job.tags) == ("images", 9, ["a"])


def test_batch_size_is_bounded():
    with pytest.raises(ValidationError):
        BatchCreate(jobs=[])
    with pytest.raises(ValidationError):
        BatchCreate(jobs=[JobCreate(task="echo")] * (limits.MAX_BATCH_SIZE + 1))
    assert len(BatchCreate(jobs=[JobCreate(task="echo")] * limits.MAX_BATCH_SIZE).jobs) == (
        limits.MAX_BATCH_SIZE
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"task": "echo", "args": {"a": "x\x00y"}}, ("args",)),
        ({"task": "echo", "args": {"a": [{"b\x00": 1}]}}, ("args",)),
        ({"task": "echo", "tags": ["a\x00"]}, ("tags", 0)),
        ({"task": "echo", "metadata": {"k": "v\x00"}}, ("metadata", "k")),
    ],
)
def test_nul_characters_are_refused_where_postgresql_cannot_store_them(body, field):
    with pytest.raises(ValidationError) as refused:
        JobCreate.model_validate(body)
    assert refused.value.errors()[0]["loc"] == field


def test_other_control_characters_are_kept():
    job = JobCreate(task="echo", args={"a": "tab\there\x01"}, tags=["a\tb"])
    assert job.args == {"a": "tab\there\x01"}
