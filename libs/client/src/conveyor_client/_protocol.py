"""What the sync and async clients share: configuration, request bodies and answers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

import httpx

from conveyor_client.errors import ConveyorAPIError

GATEWAY_URL_ENV = "CONVEYOR_GATEWAY_URL"
API_KEY_ENV = "CONVEYOR_API_KEY"
DEFAULT_GATEWAY_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
FINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
# Answers worth polling through in `wait()`: the platform is briefly unavailable, not wrong.
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
USER_AGENT = "conveyor-client/0.1"


def resolve_base_url(base_url: str | None) -> str:
    return (base_url or os.environ.get(GATEWAY_URL_ENV) or DEFAULT_GATEWAY_URL).rstrip("/")


def resolve_api_key(api_key: str | None) -> str:
    key = api_key or os.environ.get(API_KEY_ENV)
    if not key:
        raise ValueError(f"no API key: pass api_key= or set {API_KEY_ENV}")
    return key


def default_headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode(body: Any) -> bytes:
    return json.dumps(body, default=_json_default, separators=(",", ":")).encode()


def job_body(
    task: str, args: Mapping[str, Any] | None, options: Mapping[str, Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {"task": task}
    if args is not None:
        body["args"] = dict(args)
    body.update({k: v for k, v in options.items() if v is not None})
    return body


def batch_body(jobs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {"jobs": [dict(job) for job in jobs]}


def submit_headers(idempotency_key: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return headers


def list_params(
    *,
    status: str | None,
    task: str | None,
    queue: str | None,
    created_after: datetime | str | None,
    created_before: datetime | str | None,
    page_size: int | None,
    cursor: str | None,
) -> dict[str, str]:
    raw: dict[str, Any] = {
        "status": status,
        "task": task,
        "queue": queue,
        "created_after": created_after,
        "created_before": created_before,
        "limit": page_size,
        "cursor": cursor,
    }
    return {
        k: (v.isoformat() if isinstance(v, datetime) else str(v))
        for k, v in raw.items()
        if v is not None
    }


def answer(response: httpx.Response) -> Any:
    """The JSON body of a successful answer; a `ConveyorAPIError` for any other."""
    if response.is_success:
        return response.json()
    raise api_error(response)


def api_error(response: httpx.Response) -> ConveyorAPIError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {
            "type": "about:blank",
            "title": response.reason_phrase,
            "status": response.status_code,
        }
    return ConveyorAPIError(response.status_code, body)
