"""How `make dev` reads its settings before anything starts."""

import socket

import pytest

from conveyor_devstack import dev
from conveyor_devstack.ports import free_port


def test_sqlite_file_under_dot_conveyor_by_default(tmp_path):
    paths = dev.DevPaths.under(tmp_path)
    url = dev.database_url({}, paths)
    assert url == f"sqlite+aiosqlite:///{tmp_path.resolve()}/.conveyor/conveyor.db"
    assert url.startswith("sqlite+aiosqlite:////")  # an absolute path


def test_database_url_from_environment(tmp_path):
    paths = dev.DevPaths.under(tmp_path)
    given = "postgresql+asyncpg://u:p@db/conveyor"
    assert dev.database_url({"CONVEYOR_DATABASE_URL": given}, paths) == given


def test_gateway_port_from_environment():
    port = free_port()
    assert dev.gateway_port({"CONVEYOR_GATEWAY_PORT": str(port)}) == port


@pytest.mark.parametrize("raw", ["http", "0", "70000"])
def test_gateway_port_must_be_a_port(raw):
    with pytest.raises(dev.DevConfigError, match="CONVEYOR_GATEWAY_PORT"):
        dev.gateway_port({"CONVEYOR_GATEWAY_PORT": raw})


def test_taken_gateway_port_names_the_variable_to_set():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(dev.DevConfigError) as info:
            dev.gateway_port({"CONVEYOR_GATEWAY_PORT": str(port)})
    assert f"port {port}" in str(info.value)
    assert "CONVEYOR_GATEWAY_PORT" in str(info.value)


def test_run_fails_fast_on_a_taken_port(tmp_path, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        code = dev.run({"CONVEYOR_GATEWAY_PORT": str(port)}, tmp_path, dev.Terminal())
    assert code == 1
    assert "CONVEYOR_GATEWAY_PORT" in capsys.readouterr().err
    assert not (tmp_path / ".conveyor").exists()  # nothing was started or written


def test_saved_key_belongs_to_its_database(tmp_path):
    paths = dev.DevPaths.under(tmp_path)
    dev.save_key(paths, "sqlite+aiosqlite:////a.db", "cvk_one_key")
    assert dev.load_saved_key(paths, "sqlite+aiosqlite:////a.db") == "cvk_one_key"
    assert dev.load_saved_key(paths, "sqlite+aiosqlite:////b.db") is None
    assert "a.db" not in paths.api_key.read_text()  # a fingerprint, not the URL


def test_unreadable_key_file_means_no_saved_key(tmp_path):
    paths = dev.DevPaths.under(tmp_path)
    paths.root.mkdir()
    paths.api_key.write_text("not json")
    assert dev.load_saved_key(paths, "sqlite+aiosqlite:////a.db") is None


def test_stop_grace_setting():
    assert dev.stop_grace({}) == dev.DEFAULT_GRACE_SECONDS
    assert dev.stop_grace({"CONVEYOR_DEVSTACK_STOP_GRACE": "2.5"}) == 2.5
    with pytest.raises(dev.DevConfigError):
        dev.stop_grace({"CONVEYOR_DEVSTACK_STOP_GRACE": "soon"})
