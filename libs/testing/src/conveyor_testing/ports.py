"""Moved to `conveyor_devstack.ports`; kept so existing imports keep working."""

from conveyor_devstack.ports import free_port, port_is_free, wait_for_port

__all__ = ["free_port", "port_is_free", "wait_for_port"]
