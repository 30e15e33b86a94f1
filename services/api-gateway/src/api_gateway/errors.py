"""Problems the gateway itself answers, beyond the common ones. Slugs are the public contract
(docs/architecture.md); job-service and result-service answer some of the same ones."""

from __future__ import annotations

from conveyor_common.problems import Conflict, ConveyorError, NotFound, Unauthorized

INVALID_TOKEN_CHALLENGE = 'Bearer realm="conveyor", error="invalid_token"'


class JobNotFinished(Conflict):
    slug = "job-not-finished"
    title = "The job has not finished yet"


class JobFailed(Conflict):
    slug = "job-failed"
    title = "The job failed"


class JobCancelled(Conflict):
    slug = "job-cancelled"
    title = "The job was cancelled"


class JobAlreadyFinished(Conflict):
    slug = "job-already-finished"
    title = "The job already finished"


class JobNotRetryable(Conflict):
    slug = "job-not-retryable"
    title = "Only a FAILED or CANCELLED job can be retried"


class DeadLetterNotFound(NotFound):
    slug = "dead-letter-not-found"
    title = "No such dead letter"


class ResultExpired(ConveyorError):
    status = 410
    slug = "result-expired"
    title = "The job succeeded but its result is no longer stored"


class InvalidCredentials(Unauthorized):
    """Credentials were sent but are not valid (unknown, revoked or expired key; a token that
    fails any check). RFC 6750 tells the client so with `error="invalid_token"`."""

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail)
        self.headers = {"WWW-Authenticate": INVALID_TOKEN_CHALLENGE}
