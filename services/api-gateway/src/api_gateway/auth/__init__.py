"""Who is calling: API keys (verified by job-service, cached briefly) and JWT bearer tokens
(verified here against the identity provider's JWKS), the tenant's rate limit, and the scope each
`/v1` route needs."""

from api_gateway.auth.api_keys import KeyVerifier, key_digest
from api_gateway.auth.dependencies import (
    Admin,
    Authenticated,
    Manager,
    Reader,
    Writer,
    authenticate,
    call_context,
    require,
)
from api_gateway.auth.principal import Principal
from api_gateway.auth.tokens import JwtVerifier

__all__ = [
    "Admin",
    "Authenticated",
    "JwtVerifier",
    "KeyVerifier",
    "Manager",
    "Principal",
    "Reader",
    "Writer",
    "authenticate",
    "call_context",
    "key_digest",
    "require",
]
