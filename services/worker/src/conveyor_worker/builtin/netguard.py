"""Where `http.request` may connect: the server-side request forgery guard.

A job's URL is chosen by whoever holds an API key, and the worker sits inside the cluster, so
the worker must not become a proxy to loopback services, the pod network or the cloud metadata
endpoint. The check runs at connect time on the very address the socket connects to (so DNS
rebinding between a check and the connect cannot slip through), for every hop of a redirect.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore

from conveyor_worker.errors import PermanentError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = frozenset({"http", "https"})
# Link-local and private already, named anyway: these are the targets attackers try first.
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
# 64:ff9b::/96 embeds an IPv4 address that a NAT64 gateway would reach for us.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# IANA special-purpose ranges, listed here as well because the stdlib's `is_global` tables
# differ between Python patch releases (3.11.7 calls 192.0.0.8 global, for one).
_SPECIAL_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
        "100::/64", "2001::/23", "2001:db8::/32", "fc00::/7", "fe80::/10",
    )
)  # fmt: skip


class DestinationNotAllowed(PermanentError):
    """The URL's scheme or the address it resolves to is refused by policy."""


@dataclass(frozen=True, slots=True)
class AllowedHost:
    host: str
    port: int | None = None  # None: any port

    def matches(self, host: str, port: int) -> bool:
        return self.host == host.lower().strip("[]") and self.port in (None, port)


def parse_allowed_hosts(entries: Iterable[str]) -> frozenset[AllowedHost]:
    """`host`, `host:port` or `[v6]:port` entries, as in `CONVEYOR_HTTP_ALLOWED_HOSTS`."""
    parsed: set[AllowedHost] = set()
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        host, port = entry, None
        if entry.startswith("["):
            closing = entry.find("]")
            if closing < 0:
                raise ValueError(f"unbalanced brackets in allowed host {raw!r}")
            host, rest = entry[1:closing], entry[closing + 1 :]
            if rest:
                if not rest.startswith(":"):
                    raise ValueError(f"invalid allowed host {raw!r}")
                port = int(rest[1:])
        elif entry.count(":") == 1:
            host, port_text = entry.split(":")
            port = int(port_text)
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"invalid port in allowed host {raw!r}")
        parsed.add(AllowedHost(host, port))
    return frozenset(parsed)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why connecting to `ip` is refused, or None when it is a public unicast address."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "a scoped (link-local) address"
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            reason = forbidden_reason(embedded)
            return f"an IPv6 address embedding {embedded}, {reason}" if reason else None
    checks = (
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_unspecified, "the unspecified address"),
        (ip.is_reserved, "a reserved address"),
        (ip.is_private, "a private address"),
        (any(ip in net for net in _SPECIAL_NETWORKS), "a special-purpose address"),
        # Catches what the flags above miss (shared address space 100.64/10, 192.0.0/24, ...).
        (not ip.is_global, "not a globally routable address"),
    )
    for hit, reason in checks:
        if hit:
            return reason
    return None


def check_scheme(scheme: str) -> None:
    if scheme.lower() not in ALLOWED_SCHEMES:
        raise DestinationNotAllowed(f"scheme {scheme!r} is not allowed; use http or https")


def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        ip = ipaddress.ip_address(sockaddr[0])
        if ip not in addresses:
            addresses.append(ip)
    return addresses


def checked_addresses(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, or `DestinationNotAllowed` if any one is refused (a
    name with one public and one private address is refused: we cannot tell which is meant)."""
    addresses = resolve(host, port)
    for ip in addresses:
        reason = forbidden_reason(ip)
        if reason is not None:
            raise DestinationNotAllowed(f"{host}:{port} resolves to {ip}, {reason}")
    return addresses


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend that connects only to addresses the policy allows."""

    def __init__(self, allowed_hosts: frozenset[AllowedHost]) -> None:
        self.allowed_hosts = allowed_hosts

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if any(entry.matches(host, port) for entry in self.allowed_hosts):
            return super().connect_tcp(host, port, timeout, local_address, socket_options)
        last_error: Exception | None = None
        for ip in checked_addresses(host, port):
            try:
                # Connect to the checked address itself; TLS still verifies the original host
                # name, which httpcore passes as the server name.
                return super().connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        raise last_error or httpcore.ConnectError(f"{host!r} has no address")
