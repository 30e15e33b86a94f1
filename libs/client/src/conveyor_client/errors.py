"""What the SDK raises. An error answer from the API carries its RFC 9457 problem."""

from __future__ import annotations

from typing import Any


class ConveyorError(Exception):
    """Base of every error the SDK raises."""


class ConveyorAPIError(ConveyorError):
    """The API answered with an error; the problem's members are attributes."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type: str = str(problem.get("type", "about:blank"))
        self.title: str = str(problem.get("title", ""))
        self.detail: str | None = problem.get("detail")
        self.errors: list[dict[str, Any]] = list(problem.get("errors") or [])
        self.extra: dict[str, Any] = dict(problem.get("extra") or {})
        self.request_id: str | None = problem.get("request_id")
        super().__init__(f"{status} {self.type}: {self.detail or self.title}")

    @property
    def slug(self) -> str:
        """The last part of `type`, e.g. `job-not-found`."""
        return self.type.rsplit(":", 1)[-1]


class ConveyorConnectionError(ConveyorError):
    """No answer from the API: nothing listening, a dropped connection, or a timeout."""


class ConveyorTimeout(ConveyorError, TimeoutError):
    """`wait()` gave up before the job reached a final status."""

    def __init__(self, job_id: str, last_status: str | None, timeout: float) -> None:
        self.job_id = job_id
        self.last_status = last_status
        super().__init__(f"job {job_id} still {last_status} after {timeout:g} s")
