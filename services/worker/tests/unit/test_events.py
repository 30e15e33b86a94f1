from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest

from conveyor_common.events import EventType, LifecycleEvent
from conveyor_worker.events import DeferredFinalSink, PipelineOp, make_event


class RecordingSink:
    def __init__(self) -> None:
        self.batches: list[list[LifecycleEvent]] = []
        self.ops: list[list[PipelineOp]] = []

    def append(self, *events: LifecycleEvent, then: Sequence[PipelineOp] = ()) -> None:
        self.batches.append(list(events))
        self.ops.append(list(then))


def event(type_: EventType) -> LifecycleEvent:
    return make_event(type_, job_id=uuid.uuid4(), tenant_id="t", attempt=1, task="x", worker="w")


def test_final_events_are_held_until_taken():
    target = RecordingSink()
    sink = DeferredFinalSink(target)
    sink.append(event(EventType.RECEIVED), event(EventType.STARTED))
    assert [len(b) for b in target.batches] == [2]  # passed on at once, as one batch
    sink.append(event(EventType.SUCCEEDED))
    assert len(target.batches) == 1  # held back
    assert [e.type for e in sink.take()] == [EventType.SUCCEEDED]
    assert sink.take() == []  # nothing left
    assert len(target.batches) == 1  # the taker sends them, not the sink


def test_a_batch_with_a_final_event_is_held_whole():
    target = RecordingSink()
    sink = DeferredFinalSink(target)
    sink.append(event(EventType.RECEIVED), event(EventType.FAILED))
    assert target.batches == []
    assert [e.type for e in sink.take()] == [EventType.RECEIVED, EventType.FAILED]


def test_commands_ride_along_with_events_passed_on_but_not_with_a_final_one():
    target = RecordingSink()
    sink = DeferredFinalSink(target)

    def command(_pipe):
        return None

    sink.append(event(EventType.SKIPPED), then=[command])
    assert target.ops == [[command]]
    with pytest.raises(ValueError, match="final event"):
        sink.append(event(EventType.SUCCEEDED), then=[command])
