"""Appending lifecycle events to the Redis stream job-service reads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import redis
from redis.client import Pipeline

from conveyor_common.events import EventType, LifecycleEvent
from conveyor_common.redis_keys import RedisKeys

FINAL_EVENTS = frozenset({EventType.SUCCEEDED, EventType.FAILED})

# job-service deletes entries once applied, so the stream stays short; the cap only bounds it
# while job-service is down. `~` lets Redis trim whole nodes, which is far cheaper.
DEFAULT_STREAM_MAXLEN = 1_000_000


# A command queued on the pipeline that carries events (e.g. releasing the attempt's lease), so
# it costs no round trip of its own.
PipelineOp = Callable[[Pipeline], object]


class EventSink(Protocol):
    def append(self, *events: LifecycleEvent, then: Sequence[PipelineOp] = ()) -> None:
        """Appends `events` in order, then runs `then` in the same round trip."""


class RedisEventSink:
    """Writes events with `XADD ... MAXLEN ~ n`, several in one pipeline (one round trip)."""

    def __init__(
        self, client: redis.Redis, keys: RedisKeys, *, maxlen: int = DEFAULT_STREAM_MAXLEN
    ) -> None:
        self.client = client
        self.stream = keys.events_stream
        self.maxlen = maxlen

    def append(self, *events: LifecycleEvent, then: Sequence[PipelineOp] = ()) -> None:
        if not events and not then:
            return
        pipe = self.client.pipeline(transaction=False)
        for event in events:
            pipe.xadd(
                self.stream,
                event.to_stream_fields(),  # type: ignore[arg-type]
                maxlen=self.maxlen,
                approximate=True,
            )
        for op in then:
            op(pipe)
        pipe.execute()


class DeferredFinalSink:
    """Passes events on at once, except a batch that holds a final event (`succeeded` or
    `failed`): that waits for `take()`, and goes out with the attempt's result record in one
    round trip (`outcome.OutcomeWriter`), so whoever sees the final event also finds the result.
    """

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self.pending: list[LifecycleEvent] = []

    def append(self, *events: LifecycleEvent, then: Sequence[PipelineOp] = ()) -> None:
        if any(event.type in FINAL_EVENTS for event in events):
            if then:
                # The held batch goes out with the outcome script, which carries no pipeline
                # commands.
                raise ValueError("commands cannot ride along with a final event")
            self.pending.extend(events)
        else:
            self.sink.append(*events, then=then)

    def take(self) -> list[LifecycleEvent]:
        """The held-back events, for the caller to send (and no longer held)."""
        pending, self.pending = self.pending, []
        return pending


def make_event(
    type_: EventType,
    *,
    job_id: Any,
    tenant_id: str,
    attempt: int,
    task: str | None,
    worker: str | None,
    **fields: Any,
) -> LifecycleEvent:
    return LifecycleEvent(
        job_id=job_id,
        tenant_id=tenant_id,
        attempt=attempt,
        type=type_,
        at=datetime.now(UTC),
        task=task,
        worker=worker,
        **fields,
    )
