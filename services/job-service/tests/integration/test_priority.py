"""Priority direction: Conveyor's 9 is the most urgent, and a real kombu consumer on the Redis
transport (the path a Celery worker takes: BRPOP over the queue's priority lists) receives a
priority-9 job before priority-0 jobs published earlier."""

from __future__ import annotations

import asyncio
from typing import Any

from kombu import Consumer, Queue
from kombu.message import Message

from conveyor_common.celery_app import create_celery_app
from conveyor_common.messages import kombu_priority, queue_key


def _consume(broker_url: str, namespace: str, count: int) -> list[str]:
    app = create_celery_app("priority-test", broker_url=broker_url, namespace=namespace)
    received: list[str] = []

    def on_message(_body: Any, message: Message) -> None:
        received.append(message.headers["id"])
        message.ack()

    try:
        with (
            app.connection_for_read() as connection,
            Consumer(
                connection, queues=[Queue("default")], callbacks=[on_message], accept=["json"]
            ) as consumer,
        ):
            consumer.qos(prefetch_count=1)
            while len(received) < count:
                connection.drain_events(timeout=10)
    finally:
        app.close()
    return received


async def test_a_priority_9_job_is_served_before_earlier_priority_0_jobs(
    quiet_harness: Any, redis_backend: Any
) -> None:
    h = quiet_harness
    low = [(await h.submit({"task": "noop"})).json()["id"] for _ in range(2)]
    middle = (await h.submit({"task": "noop", "priority": 5})).json()["id"]
    high = (await h.submit({"task": "noop", "priority": 9})).json()["id"]
    assert await h.app.state.relay.publish_once() == 4

    # Priority 9 sits in the bare queue list, the one kombu reads first.
    assert queue_key("default", kombu_priority(9)) == "default"
    [message] = await h.queue_messages(priority=9)
    assert message["headers"]["id"] == high

    order = await asyncio.to_thread(_consume, redis_backend.url, h.settings.redis_namespace, 4)
    assert order == [high, middle, *low]
