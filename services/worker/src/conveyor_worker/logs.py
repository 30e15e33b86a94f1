"""Logging for the worker process and its pool children: structlog for everything, minus
Celery's per-task chatter and its dumps of whole message bodies."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from celery.app.trace import LOG_SUCCESS
from celery.worker.consumer.consumer import INVALID_TASK_ERROR, UNKNOWN_TASK_ERROR

from conveyor_common.logging import configure_logging
from conveyor_worker.config import Settings

SERVICE = "worker"


class _NoMessageDumps(logging.Filter):
    """Celery logs the whole body of an unknown or invalid task message (pitfall #14); job
    arguments may carry secrets, so the line is cut to its first sentence."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in (UNKNOWN_TASK_ERROR, INVALID_TASK_ERROR):
            record.msg = "celery rejected a task message (unknown task or invalid message): %s"
            first = record.args[:1] if isinstance(record.args, tuple) else ()
            record.args = first or ("?",)
            record.exc_info = None
            record.exc_text = None
        return True


class _NoResults(logging.Filter):
    """Celery's success line (kept at DEBUG) prints the task's return value: a job's result is
    the tenant's data and may carry anything, secrets included, so the value is left out."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == LOG_SUCCESS and isinstance(record.args, Mapping):
            record.args = {**record.args, "return_value": "(result not logged)"}
        return True


def setup_worker_logging(settings: Settings) -> None:
    configure_logging(SERVICE, json=settings.json_logs, level=settings.log_level)
    # Celery's per-task INFO lines ("received", "succeeded in ...: <result>") repeat our own
    # `jobs.*` events, print results, and cost CPU on the hot path; DEBUG keeps them.
    if logging.getLogger().level > logging.DEBUG:
        for name in ("celery.app.trace", "celery.worker.strategy"):
            logging.getLogger(name).setLevel(logging.WARNING)
    consumer_logger = logging.getLogger("celery.worker.consumer.consumer")
    if not any(isinstance(f, _NoMessageDumps) for f in consumer_logger.filters):
        consumer_logger.addFilter(_NoMessageDumps())
    trace_logger = logging.getLogger("celery.app.trace")
    if not any(isinstance(f, _NoResults) for f in trace_logger.filters):
        trace_logger.addFilter(_NoResults())
