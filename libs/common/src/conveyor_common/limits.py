"""Input limits, one place. Each is named in the problem a client gets when it is exceeded."""

from __future__ import annotations

MAX_BODY_BYTES = 1_048_576  # one request body (a batch of 1,000 small jobs fits)
MAX_BATCH_SIZE = 1_000
MAX_ARGS_BYTES = 262_144  # the JSON-encoded args of one job
MAX_ARGS_DEPTH = 32
MAX_TAGS = 16
MAX_TAG_LENGTH = 64
MAX_METADATA_KEYS = 32
MAX_METADATA_VALUE_LENGTH = 512
MAX_NAME_LENGTH = 200  # task and queue names
MAX_IDEMPOTENCY_KEY_LENGTH = 200
MAX_ERROR_MESSAGE_LENGTH = 2_000
MAX_TRACEBACK_LENGTH = 16_000
MAX_TRACEPARENT_LENGTH = 55  # a W3C traceparent of version 00 (all Conveyor writes)
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
# PostgreSQL stores no U+0000 (NUL) in `text` or `jsonb`: client strings bound for it must not
# carry one, or the insert fails as a 500 instead of a 422 naming the field.
NO_NUL_PATTERN = r"^[^\x00]*$"

# The longest time limit a job may ask for. The broker's visibility timeout is derived from it
# (see celery_app.py) so a running task is never redelivered while it still runs (pitfall #1).
MAX_TIMEOUT_SECONDS = 3_600
DEFAULT_TIMEOUT_SECONDS = 300
MAX_ATTEMPTS_CEILING = 100
MAX_PRIORITY = 9
# Retry backoff: the base delay and the cap a task or job may ask for.
MAX_RETRY_BACKOFF_SECONDS = 86_400
# Ids one bulk dead-letter replay or purge may name.
MAX_BULK_IDS = 1_000
