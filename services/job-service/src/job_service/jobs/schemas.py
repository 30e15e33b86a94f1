"""The job contract is public and lives in `conveyor_common.jobs`; this module re-exports it for
job-service's layers and adds what only job-service needs."""

from __future__ import annotations

from conveyor_common.jobs import BatchCreate, BatchRead, JobCreate, JobError, JobList, JobRead

__all__ = ["BatchCreate", "BatchRead", "JobCreate", "JobError", "JobList", "JobRead"]
