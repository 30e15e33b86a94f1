"""`.conveyor/dev.env`: exactly the two lines a shell, the CLI or a test reads."""

import stat

import pytest

from conveyor_devstack.dev_env import read_dev_env, write_dev_env


def test_writes_exactly_two_lines(tmp_path):
    path = tmp_path / ".conveyor" / "dev.env"
    write_dev_env(path, gateway_url="http://127.0.0.1:8000", api_key="cvk_abc_def-1")
    assert path.read_text() == (
        "CONVEYOR_GATEWAY_URL=http://127.0.0.1:8000\nCONVEYOR_API_KEY=cvk_abc_def-1\n"
    )
    assert read_dev_env(path) == {
        "CONVEYOR_GATEWAY_URL": "http://127.0.0.1:8000",
        "CONVEYOR_API_KEY": "cvk_abc_def-1",
    }


def test_is_private_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "dev.env"
    write_dev_env(path, gateway_url="http://127.0.0.1:1", api_key="cvk_a_b")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev.env"]


def test_replaces_an_older_file(tmp_path):
    path = tmp_path / "dev.env"
    write_dev_env(path, gateway_url="http://127.0.0.1:1", api_key="cvk_old_key")
    write_dev_env(path, gateway_url="http://127.0.0.1:2", api_key="cvk_new_key")
    assert read_dev_env(path)["CONVEYOR_API_KEY"] == "cvk_new_key"
    assert len(path.read_text().splitlines()) == 2


@pytest.mark.parametrize("key", ["", "cvk_a\nEVIL=1", "cvk_a b", "cvk_$(x)"])
def test_refuses_values_a_shell_would_misread(tmp_path, key):
    with pytest.raises(ValueError, match="api_key"):
        write_dev_env(tmp_path / "dev.env", gateway_url="http://127.0.0.1:1", api_key=key)
    assert not (tmp_path / "dev.env").exists()
