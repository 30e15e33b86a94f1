"""The SSRF guard's address and host rules (no network: only literal addresses and
`localhost`, which resolves from /etc/hosts)."""

from __future__ import annotations

import ipaddress

import pytest

from conveyor_worker.builtin.netguard import (
    AllowedHost,
    DestinationNotAllowed,
    GuardedBackend,
    check_scheme,
    checked_addresses,
    forbidden_reason,
    parse_allowed_hosts,
)
from conveyor_worker.errors import PermanentError


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.1.1",
        "fe80::1",
        "fd00:ec2::254",
        "fc00::1",
        "224.0.0.1",
        "ff02::1",
        "0.0.0.0",
        "::",
        "240.0.0.1",
        "255.255.255.255",
        "100.64.0.1",  # shared address space (carrier NAT)
        "192.0.0.8",
        "198.18.0.1",  # benchmarking
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:169.254.169.254",
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
    ],
)
def test_forbidden_addresses(address):
    assert forbidden_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address):
    assert forbidden_reason(ipaddress.ip_address(address)) is None


def test_metadata_addresses_are_named():
    for address in ("169.254.169.254", "fd00:ec2::254"):
        assert forbidden_reason(ipaddress.ip_address(address)) == "a cloud metadata address"


@pytest.mark.parametrize("scheme", ["file", "ftp", "gopher", "dict", "", "javascript"])
def test_only_http_schemes(scheme):
    with pytest.raises(DestinationNotAllowed):
        check_scheme(scheme)


def test_http_schemes_pass():
    check_scheme("http")
    check_scheme("HTTPS")


def test_refusal_is_permanent():
    assert issubclass(DestinationNotAllowed, PermanentError)


def test_localhost_name_is_refused_through_its_addresses():
    with pytest.raises(DestinationNotAllowed, match="loopback"):
        checked_addresses("localhost", 80)


def test_backend_refuses_before_connecting():
    backend = GuardedBackend(frozenset())
    with pytest.raises(DestinationNotAllowed, match="metadata"):
        backend.connect_tcp("169.254.169.254", 80, timeout=0.1)


def test_allowed_hosts_parse_and_match():
    allowed = parse_allowed_hosts(
        [" Api.Example.com ", "127.0.0.1:8080", "[::1]:9000", "[fd00::1]", ""]
    )
    assert allowed == {
        AllowedHost("api.example.com"),
        AllowedHost("127.0.0.1", 8080),
        AllowedHost("::1", 9000),
        AllowedHost("fd00::1"),
    }
    by_host = {a.host: a for a in allowed}
    assert by_host["api.example.com"].matches("API.example.com", 443)
    assert by_host["127.0.0.1"].matches("127.0.0.1", 8080)
    assert not by_host["127.0.0.1"].matches("127.0.0.1", 8081)
    assert by_host["::1"].matches("[::1]", 9000)


@pytest.mark.parametrize("entry", ["host:notaport", "host:0", "host:70000", "[::1", "[::1]x"])
def test_malformed_allowed_hosts_are_refused(entry):
    with pytest.raises(ValueError):  # noqa: PT011
        parse_allowed_hosts([entry])
