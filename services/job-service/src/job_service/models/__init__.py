"""ORM models, one per table. Importing this package registers every table on `Base.metadata`
(Alembic's autogenerate and drift check read it from here)."""

from job_service.models.api_key import ApiKey
from job_service.models.base import Base
from job_service.models.job import Job
from job_service.models.job_event import JobEvent
from job_service.models.outbox import OutboxEntry

__all__ = ["ApiKey", "Base", "Job", "JobEvent", "OutboxEntry"]
