"""Who a request is made for, however it authenticated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str
    # The API key's id, or the JWT's subject (`sub`).
    key_id: str
    scopes: frozenset[str]
    method: Literal["api_key", "jwt"] = "api_key"
