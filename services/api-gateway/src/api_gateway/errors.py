"""Problems the gateway itself answers, beyond the common ones. Slugs are the public contract
(docs/architecture.md); job-service and result-service answer some of the same ones."""

from __future__ import annotations

from conveyor_common.problems import Conflict, ConveyorError


class JobNotFinished(Conflict):
    slug = "job-not-finished"
    title = "The job has not finished yet"


class JobFailed(Conflict):
    slug = "job-failed"
    title = "The job failed"


class JobCancelled(Conflict):
    slug = "job-cancelled"
    title = "The job was cancelled"


class ResultExpired(ConveyorError):
    status = 410
    slug = "result-expired"
    title = "The job succeeded but its result is no longer stored"
