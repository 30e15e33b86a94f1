"""A submit without an Idempotency-Key is one statement, which PostgreSQL commits on its own:
no BEGIN and COMMIT round trips around it. With a key it is a transaction. Seen by asyncpg
itself: its query logger records the transaction control it sends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from job_service.db import is_sqlite

TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")


@contextmanager
def transaction_control(h: Any) -> Iterator[list[str]]:
    sent: list[str] = []

    def log(record: Any) -> None:
        word = record.query.strip().rstrip(";").split(" ", 1)[0].upper()
        if word in TRANSACTION_CONTROL:
            sent.append(word)

    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        if log not in driver._query_loggers:
            driver.add_query_logger(log)

    engine = h.app.state.engine.sync_engine
    event.listen(engine, "checkout", on_checkout)
    try:
        yield sent
    finally:
        event.remove(engine, "checkout", on_checkout)


# PostgreSQL only: SQLite's writers take the write lock with BEGIN IMMEDIATE (db.py).
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/internal/v1/jobs", {"task": "echo", "args": {"x": 1}}),
        (
            "/internal/v1/jobs/batch",
            {"jobs": [{"task": "echo", "args": {"x": i}} for i in range(3)]},
        ),
    ],
)
async def test_only_a_submit_with_a_key_sends_begin_and_commit(
    quiet_harness: Any, path: str, body: dict[str, Any]
) -> None:
    h = quiet_harness
    assert not is_sqlite(h.app.state.engine.url)

    with transaction_control(h) as keyed:
        response = await h.client.post(path, json=body, headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 202, response.text
    assert keyed == ["BEGIN", "COMMIT"]

    with transaction_control(h) as keyless:
        response = await h.client.post(path, json=body)
    assert response.status_code == 202, response.text
    assert keyless == []
    jobs = len(body.get("jobs", [body]))
    assert await h.outbox_size() == 2 * jobs  # both submits stored their jobs' outbox rows
