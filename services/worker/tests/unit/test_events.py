from __future__ import annotations

import uuid
from collections.abc import Sequence

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


def test_final_events_wait_for_flush():
    target = RecordingSink()
    sink = DeferredFinalSink(target)
    sink.append(event(EventType.RECEIVED), event(EventType.STARTED))
    assert [len(b) for b in target.batches] == [2]  # passed on at once, as one batch
    sink.append(event(EventType.SUCCEEDED))
    assert len(target.batches) == 1  # held back
    sink.flush()
    assert [e.type for e in target.batches[-1]] == [EventType.SUCCEEDED]
    sink.flush()  # nothing left: an empty append
    assert target.batches[-1] == []


def test_a_batch_with_a_final_event_is_held_whole():
    target = RecordingSink()
    sink = DeferredFinalSink(target)
    sink.append(event(EventType.RECEIVED), event(EventType.FAILED))
    assert target.batches == []
    sink.flush()
    assert [e.type for e in target.batches[0]] == [EventType.RECEIVED, EventType.FAILED]


def test_unstored_success_becomes_a_retryable_failure():
    target = RecordingSink()
    sink = DeferredFinalSink(target)
    sink.append(event(EventType.SUCCEEDED))
    sink.flush_as_failure(error_type="OperationalError", message="redis went away")
    (failed,) = target.batches[0]
    assert failed.type == EventType.FAILED
    assert (failed.error_type, failed.error_message, failed.retryable) == (
        "OperationalError",
        "redis went away",
        True,
    )


def test_commands_ride_along_with_the_final_event():
    target = RecordingSink()
    sink = DeferredFinalSink(target)

    def release(_pipe):
        return None

    sink.append(event(EventType.SUCCEEDED))
    sink.flush(then=[release])
    assert [e.type for e in target.batches[0]] == [EventType.SUCCEEDED]
    assert target.ops[0] == [release]  # same round trip as the event
    sink.append(event(EventType.SUCCEEDED))
    sink.flush_as_failure(error_type="E", message="m", then=[release])
    assert target.batches[1][0].type == EventType.FAILED
    assert target.ops[1] == [release]
