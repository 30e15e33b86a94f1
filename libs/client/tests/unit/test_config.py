from __future__ import annotations

import pytest

from conveyor_client import Client


def test_reads_url_and_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_GATEWAY_URL", "http://gw.example:9000/")
    monkeypatch.setenv("CONVEYOR_API_KEY", "cvk_env_key")
    with Client() as client:
        assert str(client._http.base_url) == "http://gw.example:9000"
        assert client._http.headers["authorization"] == "Bearer cvk_env_key"


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_GATEWAY_URL", "http://env.example")
    monkeypatch.setenv("CONVEYOR_API_KEY", "cvk_env_key")
    with Client("http://arg.example", "cvk_arg_key", timeout=3) as client:
        assert str(client._http.base_url) == "http://arg.example"
        assert client._http.headers["authorization"] == "Bearer cvk_arg_key"
        assert client._http.timeout.read == 3


def test_no_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_API_KEY", raising=False)
    with pytest.raises(ValueError, match="CONVEYOR_API_KEY"):
        Client("http://x")
