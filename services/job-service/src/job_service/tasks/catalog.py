"""The task catalog workers advertise in Redis (`RedisKeys.catalog`: name -> TaskDescriptor
JSON), read through a short in-memory cache.

When Redis can't be read, or answers with an empty catalog (restarted without its data, before
the workers advertised again), the last catalog seen is used: submissions keep working while
Redis is down or empty (the outbox publishes them when it's back). A background refresher keeps
the cache warm from start-up, so only a service that has never reached Redis since it started
answers 503."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import structlog
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from conveyor_common.catalog import TaskCatalog, TaskDescriptor
from conveyor_common.problems import ServiceUnavailable
from job_service.background import BackgroundLoop
from job_service.tasks.validation import compile_schema

log = structlog.get_logger("job_service.catalog")


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    descriptor: TaskDescriptor
    validator: Draft202012Validator


class CatalogCache:
    def __init__(self, redis: Redis, key: str, *, ttl_seconds: float = 1.5) -> None:
        self._redis = redis
        self._key = key
        self._ttl = ttl_seconds
        self._entries: dict[str, CatalogEntry] | None = None
        self._loaded_at = 0.0
        self._validators: dict[str, tuple[str, Draft202012Validator]] = {}
        self._lock = asyncio.Lock()

    @property
    def cached_tasks(self) -> frozenset[str]:
        """The task names held right now, without asking Redis."""
        return frozenset(self._entries or ())

    async def entries(self) -> dict[str, CatalogEntry]:
        if self._entries is not None and time.monotonic() - self._loaded_at < self._ttl:
            return self._entries
        async with self._lock:
            if self._entries is not None and time.monotonic() - self._loaded_at < self._ttl:
                return self._entries
            try:
                raw: dict[Any, Any] = await self._redis.hgetall(self._key)
            except (RedisError, OSError) as exc:
                if self._entries is None:
                    raise ServiceUnavailable("The task catalog can't be read right now.") from exc
                log.warning("catalog.refresh_failed", error=type(exc).__name__)
                # Serve the last catalog, and don't ask a down Redis on every request.
                self._loaded_at = time.monotonic()
                return self._entries
            entries = self._parse(raw)
            if not entries and self._entries:
                # An empty catalog right after we saw a full one is a Redis that restarted
                # without its data, before the workers advertised again: submissions keep
                # being validated against what they advertised last.
                log.warning("catalog.empty_kept_last", tasks=len(self._entries))
            else:
                self._entries = entries
            self._loaded_at = time.monotonic()
            return self._entries

    async def catalog(self) -> TaskCatalog:
        entries = await self.entries()
        return TaskCatalog(tasks=[entries[name].descriptor for name in sorted(entries)])

    def _parse(self, raw: dict[Any, Any]) -> dict[str, CatalogEntry]:
        entries: dict[str, CatalogEntry] = {}
        for name_bytes, value in raw.items():
            name = name_bytes.decode(errors="replace")
            try:
                descriptor = TaskDescriptor.model_validate_json(value)
                validator = self._validator(descriptor)
            except (ValidationError, SchemaError, ValueError) as exc:
                log.warning("catalog.bad_descriptor", task=name, error=type(exc).__name__)
                continue
            entries[descriptor.name] = CatalogEntry(descriptor, validator)
        return entries

    def _validator(self, descriptor: TaskDescriptor) -> Draft202012Validator:
        # Compiling a schema costs more than the refresh itself; reuse it while it's unchanged.
        fingerprint = json.dumps(descriptor.input_schema, sort_keys=True)
        cached = self._validators.get(descriptor.name)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        validator = compile_schema(descriptor.input_schema)
        self._validators[descriptor.name] = (fingerprint, validator)
        return validator


class CatalogRefresher(BackgroundLoop):
    """Reads the catalog at start-up and every `interval_seconds` after, so the cache holds a
    catalog before the first submission needs one (and still holds it if Redis goes away)."""

    name = "catalog-refresher"

    def __init__(self, catalog: CatalogCache, *, interval_seconds: float = 1.5) -> None:
        super().__init__()
        self._catalog = catalog
        self._interval = interval_seconds

    async def run(self) -> None:
        while not self.stopping:
            try:
                await self._catalog.entries()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # ServiceUnavailable until Redis first answers
                log.debug("catalog.warm_up_failed", error=type(exc).__name__)
            await self.sleep(self._interval)
