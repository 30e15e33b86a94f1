"""API scopes. Every `/v1` route names the one it needs."""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    JOBS_WRITE = "jobs:write"  # submit jobs
    JOBS_READ = "jobs:read"  # read jobs, events, results and dead letters
    JOBS_MANAGE = "jobs:manage"  # cancel, retry, replay dead letters
    ADMIN = "admin"  # manage API keys, purge dead letters, other administration


ALL_SCOPES = frozenset(Scope)
DEFAULT_KEY_SCOPES = frozenset({Scope.JOBS_WRITE, Scope.JOBS_READ, Scope.JOBS_MANAGE})
