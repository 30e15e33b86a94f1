"""The identity provider's public keys (a JWKS), cached and refreshed.

Keys are loaded lazily and kept for `max_age`; a token naming an unknown `kid` triggers a reload
(a provider rotating its keys publishes the new one before signing with it), but never more
often than `min_refresh_interval`, so random kids cannot make the gateway hammer the provider.
When a reload fails the keys already known stay in use; with none known, tokens cannot be
checked and the caller answers 503."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import structlog
from jwt import PyJWK, PyJWTError

log = structlog.get_logger("api_gateway.auth.jwks")

# A JWKS is a few kilobytes; anything far larger is not one.
MAX_JWKS_BYTES = 256 * 1024
# Key types with a public half. `oct` (a shared secret) must never verify a token here.
_PUBLIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})

JwksLoader = Callable[[], Awaitable[Any]]
RawKeys = dict[str | None, dict[str, Any]]


class JwksError(Exception):
    """The document is not a usable JWKS, or could not be fetched."""


class JwksUnavailable(Exception):
    """No keys are known and none could be loaded."""


class UnknownSigningKey(Exception):
    """No usable key for this token's `kid` and algorithm (the reason is the message)."""


def parse_jwks(document: Any) -> RawKeys:
    """The public signing keys of a JWKS document, by `kid`."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise JwksError("not a JWKS: no `keys` list")
    usable: RawKeys = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("kty") not in _PUBLIC_KEY_TYPES:
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        kid = jwk.get("kid")
        if kid is not None and not isinstance(kid, str):
            continue
        if "d" in jwk:
            # A private key in a public key set: someone published their signing secret.
            log.error("auth.jwks_private_key_published", kid=kid)
            continue
        usable[kid] = jwk
    if not usable:
        raise JwksError("the JWKS holds no public signing key")
    return usable


def url_loader(client: httpx.AsyncClient, url: str) -> JwksLoader:
    async def load() -> Any:
        async with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise JwksError(f"the JWKS URL answered {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise JwksError("the JWKS is too large")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise JwksError("the JWKS URL did not answer JSON") from exc

    return load


def file_loader(path: Path) -> JwksLoader:
    async def load() -> Any:
        text = await asyncio.to_thread(path.read_text, encoding="utf-8")
        try:
            return json.loads(text)
        except ValueError as exc:
            raise JwksError(f"{path} is not JSON") from exc

    return load


def static_loader(document: Any) -> JwksLoader:
    async def load() -> Any:
        return document

    return load


def loader_from_setting(value: str) -> JwksLoader:
    """`CONVEYOR_JWT_JWKS`: the JWKS itself as JSON, or the path of a file holding it (read
    again on refresh, so a rotated Kubernetes ConfigMap or Secret is picked up)."""
    if value.lstrip().startswith("{"):
        try:
            return static_loader(json.loads(value))
        except ValueError as exc:
            raise JwksError("CONVEYOR_JWT_JWKS is not valid JSON") from exc
    return file_loader(Path(value))


class JwksCache:
    def __init__(
        self,
        load: JwksLoader,
        *,
        max_age: float,
        min_refresh_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._max_age = max_age
        self._min_refresh_interval = min_refresh_interval
        self._clock = clock
        self._keys: RawKeys | None = None
        self._loaded_at = -math.inf
        self._attempted_at = -math.inf
        self._generation = 0
        self._lock = asyncio.Lock()
        self._built: dict[tuple[str | None, str], PyJWK] = {}

    async def prime(self) -> None:
        """Loads now, raising if that fails: for sources that must work at start-up."""
        self._keys = parse_jwks(await self._load())
        self._loaded_at = self._attempted_at = self._clock()
        self._generation += 1

    async def signing_key(self, kid: str | None, algorithm: str) -> PyJWK:
        if self._keys is None or self._clock() - self._loaded_at >= self._max_age:
            await self._refresh("expired" if self._keys is not None else "first-use")
        raw = self._lookup(kid)
        if raw is None:
            await self._refresh("unknown-kid")
            raw = self._lookup(kid)
        if raw is None:
            raise UnknownSigningKey("no key with this kid")
        return self._build(kid, raw, algorithm)

    def _lookup(self, kid: str | None) -> dict[str, Any] | None:
        if self._keys is None:
            return None
        if kid is None:
            # Tolerated only where it cannot be ambiguous: a set of exactly one key.
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _build(self, kid: str | None, raw: dict[str, Any], algorithm: str) -> PyJWK:
        declared = raw.get("alg")
        if declared is not None and declared != algorithm:
            raise UnknownSigningKey("the key is for another algorithm")
        cached = self._built.get((kid, algorithm))
        if cached is not None:
            return cached
        try:
            # The algorithm is the token's, already checked against the pinned list; a key of
            # another type (an EC key for RS256, say) fails to load here.
            key = PyJWK(raw, algorithm=algorithm)
        except PyJWTError as exc:
            raise UnknownSigningKey("the key does not fit the token's algorithm") from exc
        self._built[(kid, algorithm)] = key
        return key

    async def _refresh(self, reason: str) -> None:
        generation = self._generation
        async with self._lock:
            if self._generation != generation:
                return  # another request reloaded while this one waited
            now = self._clock()
            if now - self._attempted_at < self._min_refresh_interval:
                if self._keys is None:
                    raise JwksUnavailable("the identity provider's keys are unavailable")
                return
            self._attempted_at = now
            try:
                keys = parse_jwks(await self._load())
            except (JwksError, httpx.HTTPError, OSError) as exc:
                log.warning(
                    "auth.jwks_unavailable",
                    reason=reason,
                    error=type(exc).__name__,
                    detail=str(exc) if isinstance(exc, JwksError) else None,
                    keeping_known_keys=self._keys is not None,
                )
                if self._keys is None:
                    raise JwksUnavailable("the identity provider's keys are unavailable") from exc
                return
            self._keys = keys
            self._loaded_at = now
            self._generation += 1
            self._built.clear()
            log.info("auth.jwks_loaded", reason=reason, keys=len(keys))
