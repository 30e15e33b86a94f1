"""Our own Redis server: start, stop, kill, restart on the same port, data kept only with a
data folder."""

import pytest
import redis

from conveyor_devstack.redis_server import RedisServer


def _client(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=2)


def test_start_stop_restart_on_the_same_port():
    server = RedisServer().start()
    scratch = server.dir
    try:
        client = _client(server)
        client.set("k", "v")
        assert client.get("k") == b"v"
        info = client.config_get("maxmemory-policy")
        assert info["maxmemory-policy"] == "noeviction"
        port = server.port

        server.stop()
        assert not server.alive()
        with pytest.raises(redis.exceptions.ConnectionError):
            _client(server).ping()

        server.restart()
        assert server.port == port
        assert _client(server).ping()
        assert _client(server).get("k") is None  # nothing kept without a data folder
    finally:
        server.close()
    assert not server.alive()
    assert not scratch.exists()


def test_kill_then_start_again():
    server = RedisServer().start()
    try:
        pid = server.process.pid
        server.kill()
        assert not server.alive()
        server.start()
        assert server.process.pid != pid
        assert _client(server).ping()
    finally:
        server.close()


def test_data_folder_keeps_data_across_restarts(tmp_path):
    data = tmp_path / "redis"
    server = RedisServer(data_dir=data).start()
    try:
        _client(server).rpush("queue", "message")
        server.restart()  # SIGTERM: Redis flushes its append-only file before exiting
        assert _client(server).lrange("queue", 0, -1) == [b"message"]
    finally:
        server.close()
    assert data.exists()  # the developer's data is not ours to delete
    assert (data / "redis.log").exists()
