"""Errors carry their HTTP status; one set of handlers renders them as RFC 9457
`application/problem+json`. Services raise these, never `HTTPException`."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:conveyor:problem:"


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. `body.args.count`.")
    reason: str


class Problem(BaseModel):
    """RFC 9457 problem details, with Conveyor's extensions."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None
    extra: dict[str, Any] | None = Field(
        default=None, description="Problem-specific members (e.g. `known_tasks`, `limit`)."
    )


class ConveyorError(Exception):
    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = errors
        self.extra = extra
        self.headers = headers or {}

    @classmethod
    def type_uri(cls) -> str:
        return PROBLEM_TYPE_PREFIX + cls.slug

    def to_problem(self, *, instance: str | None = None, request_id: str | None = None) -> Problem:
        return Problem(
            type=self.type_uri(),
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            request_id=request_id,
            errors=self.errors,
            extra=self.extra,
        )


class InvalidRequest(ConveyorError):
    status = 422
    slug = "validation-error"
    title = "The request is not valid"


class MalformedBody(ConveyorError):
    status = 400
    slug = "malformed-body"
    title = "The request body is not valid JSON"


class Unauthorized(ConveyorError):
    status = 401
    slug = "unauthorized"
    title = "Missing or invalid credentials"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="conveyor"'})


class Forbidden(ConveyorError):
    status = 403
    slug = "forbidden"
    title = "The credentials lack the scope this route needs"


class NotFound(ConveyorError):
    status = 404
    slug = "not-found"
    title = "No such resource"


class JobNotFound(NotFound):
    slug = "job-not-found"
    title = "No such job"


class Conflict(ConveyorError):
    status = 409
    slug = "conflict"
    title = "The resource is in a state that does not allow this"


class PayloadTooLarge(ConveyorError):
    status = 413
    slug = "payload-too-large"
    title = "The request body is over the size limit"


class UnsupportedMediaType(ConveyorError):
    status = 415
    slug = "unsupported-media-type"
    title = "The request body must be application/json"


class RateLimited(ConveyorError):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"


class BadGateway(ConveyorError):
    status = 502
    slug = "bad-gateway"
    title = "An upstream service failed"


class ServiceUnavailable(ConveyorError):
    status = 503
    slug = "service-unavailable"
    title = "A dependency is unavailable; try again shortly"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class GatewayTimeout(ConveyorError):
    status = 504
    slug = "gateway-timeout"
    title = "An upstream service did not answer in time"


def problem_responses(*errors: type[ConveyorError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for a route, so the docs show the problems it can answer."""
    return {
        err.status: {
            "model": Problem,
            "description": err.title,
            # FastAPI puts `model` under application/json only; the schema is repeated under
            # the media type the problems are actually served as.
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for err in errors
    }
