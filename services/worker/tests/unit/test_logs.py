"""The worker's log set-up keeps job results and message bodies out of Celery's own lines."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from celery.app.trace import LOG_SUCCESS

from conveyor_worker.config import Settings
from conveyor_worker.logs import setup_worker_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    trace_logger = logging.getLogger("celery.app.trace")
    filters, trace_level = trace_logger.filters[:], trace_logger.level
    try:
        yield
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)
        trace_logger.filters[:] = filters
        trace_logger.setLevel(trace_level)


def test_celerys_success_line_leaves_the_result_out(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_worker_logging(Settings(log_level="DEBUG", log_json=True))
    context = {
        "id": "job-1",
        "name": "echo",
        "runtime": 0.01,
        "return_value": "{'value': {'note': 'result-canary'}}",
        "args": "()",
        "kwargs": "{}",
    }
    # What celery.app.trace.info() does for every task that succeeds.
    logging.getLogger("celery.app.trace").info(LOG_SUCCESS, context, extra={"data": context})

    written = capsys.readouterr().err
    assert "result-canary" not in written
    (line,) = [json.loads(x) for x in written.splitlines() if "celery.app.trace" in x]
    assert line["event"] == "Task echo[job-1] succeeded in 0.01s: (result not logged)"
