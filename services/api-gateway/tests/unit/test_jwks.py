"""The JWKS cache: which keys count, when it reloads, and what it does when the provider fails."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from api_gateway.auth.jwks import (
    JwksCache,
    JwksError,
    JwksUnavailable,
    UnknownSigningKey,
    parse_jwks,
)


def ec_jwk(kid: str | None, **extra: Any) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(key, as_dict=True)
    if kid is not None:
        jwk["kid"] = kid
    return {**jwk, **extra}


class Provider:
    """A JWKS source whose answers the test sets; counts the loads."""

    def __init__(self, *jwks: dict[str, Any]) -> None:
        self.document: dict[str, Any] = {"keys": list(jwks)}
        self.failing = False
        self.loads = 0

    async def __call__(self) -> Any:
        self.loads += 1
        if self.failing:
            raise JwksError("provider down")
        return self.document


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cache(provider: Provider, clock: Clock, **kwargs: float) -> JwksCache:
    options = {"max_age": 300.0, "min_refresh_interval": 10.0, **kwargs}
    return JwksCache(provider, clock=clock, **options)


def test_only_public_signing_keys_count() -> None:
    keys = parse_jwks(
        {
            "keys": [
                ec_jwk("good"),
                {"kty": "oct", "kid": "shared-secret", "k": "c2VjcmV0"},
                ec_jwk("encryption", use="enc"),
                ec_jwk("leaked-private", d="cHJpdmF0ZQ"),
                ec_jwk(None),
                "not-a-key",
                {"kid": "no-type"},
            ]
        }
    )
    assert set(keys) == {"good", None}


@pytest.mark.parametrize("document", [{}, {"keys": "x"}, [], {"keys": [{"kty": "oct"}]}])
def test_documents_without_usable_keys_are_refused(document: Any) -> None:
    with pytest.raises(JwksError):
        parse_jwks(document)


async def test_loaded_on_first_use_and_kept() -> None:
    provider, clock = Provider(ec_jwk("a")), Clock()
    keys = cache(provider, clock)
    first = await keys.signing_key("a", "ES256")
    clock.now += 299
    assert await keys.signing_key("a", "ES256") is first
    assert provider.loads == 1


async def test_reloaded_when_old() -> None:
    provider, clock = Provider(ec_jwk("a")), Clock()
    keys = cache(provider, clock)
    await keys.signing_key("a", "ES256")
    clock.now += 301
    await keys.signing_key("a", "ES256")
    assert provider.loads == 2


async def test_unknown_kid_reloads_at_most_once_per_interval() -> None:
    provider, clock = Provider(ec_jwk("a")), Clock()
    keys = cache(provider, clock)
    await keys.signing_key("a", "ES256")
    for _ in range(5):
        with pytest.raises(UnknownSigningKey):
            await keys.signing_key("b", "ES256")
    assert provider.loads == 1

    clock.now += 11
    provider.document["keys"].append(ec_jwk("b"))
    await keys.signing_key("b", "ES256")
    assert provider.loads == 2


async def test_no_kid_only_with_a_single_key() -> None:
    provider, clock = Provider(ec_jwk("a")), Clock()
    keys = cache(provider, clock)
    await keys.signing_key(None, "ES256")
    provider.document["keys"].append(ec_jwk("b"))
    clock.now += 301
    with pytest.raises(UnknownSigningKey):
        await keys.signing_key(None, "ES256")


async def test_a_failed_reload_keeps_the_known_keys() -> None:
    provider, clock = Provider(ec_jwk("a")), Clock()
    keys = cache(provider, clock)
    await keys.signing_key("a", "ES256")
    provider.failing = True
    clock.now += 301
    await keys.signing_key("a", "ES256")
    assert provider.loads == 2


async def test_no_keys_and_no_provider_is_unavailable_and_not_retried_at_once() -> None:
    provider, clock = Provider(ec_jwk("a")), Clock()
    provider.failing = True
    keys = cache(provider, clock)
    for _ in range(3):
        with pytest.raises(JwksUnavailable):
            await keys.signing_key("a", "ES256")
    assert provider.loads == 1
    clock.now += 11
    provider.failing = False
    await keys.signing_key("a", "ES256")


async def test_key_type_must_fit_the_algorithm() -> None:
    provider, clock = Provider(ec_jwk("a"), ec_jwk("b", alg="ES256")), Clock()
    keys = cache(provider, clock)
    with pytest.raises(UnknownSigningKey, match="does not fit"):
        await keys.signing_key("a", "RS256")
    with pytest.raises(UnknownSigningKey, match="another algorithm"):
        await keys.signing_key("b", "ES384")
