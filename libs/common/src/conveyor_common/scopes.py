"""API scopes. Every `/v1` route names the one it needs."""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    JOBS_WRITE = "jobs:write"  # submit jobs
    JOBS_READ = "jobs:read"  # read jobs, events and results
    JOBS_MANAGE = "jobs:manage"  # cancel and retry
    ADMIN = "admin"  # manage keys, dead letters and other administration


ALL_SCOPES = frozenset(Scope)
DEFAULT_KEY_SCOPES = frozenset({Scope.JOBS_WRITE, Scope.JOBS_READ, Scope.JOBS_MANAGE})
