"""The problems the result-service answers, beyond the common ones."""

from __future__ import annotations

from conveyor_common.problems import BadGateway, Conflict, NotFound


class ResultNotFound(NotFound):
    """No stored result, or one that belongs to another tenant: the two are indistinguishable
    on purpose, so a job id alone reveals nothing about another tenant's jobs."""

    slug = "result-not-found"
    title = "No stored result for this job"


class JobNotFinished(Conflict):
    slug = "job-not-finished"
    title = "The job has not finished yet"


class JobFailed(Conflict):
    slug = "job-failed"
    title = "The job failed"


class StoredResultUnreadable(BadGateway):
    """The result backend holds something that is not a record this platform writes."""

    slug = "result-unreadable"
    title = "The stored result could not be read"
