"""Conveyor's Python SDK (`Client`, `AsyncClient`) and the `conveyor` CLI.

from conveyor_client import Client

with Client() as conveyor:  # CONVEYOR_GATEWAY_URL, CONVEYOR_API_KEY
    job = conveyor.submit("reports.build", {"month": "2025-01"}, queue="reports")
    done = conveyor.wait(job["id"], timeout=120)
    if done["status"] == "SUCCEEDED":
        print(conveyor.result(job["id"]))
"""

from conveyor_client.async_client import AsyncClient
from conveyor_client.client import Client
from conveyor_client.errors import (
    ConveyorAPIError,
    ConveyorConnectionError,
    ConveyorError,
    ConveyorTimeout,
)

__all__ = [
    "AsyncClient",
    "Client",
    "ConveyorAPIError",
    "ConveyorConnectionError",
    "ConveyorError",
    "ConveyorTimeout",
]
