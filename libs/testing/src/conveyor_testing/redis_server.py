"""Moved to `conveyor_devstack.redis_server`; kept so existing imports keep working."""

from conveyor_devstack.redis_server import RedisServer, redis_server_binary

__all__ = ["RedisServer", "redis_server_binary"]
