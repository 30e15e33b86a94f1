"""`python -m api_gateway`: serve the app with uvicorn until SIGTERM/SIGINT, letting in-flight
requests finish."""

from __future__ import annotations

import uvicorn

from api_gateway.app import create_app
from api_gateway.config import SERVICE_NAME, get_settings
from conveyor_common.logging import configure_logging
from conveyor_common.tracing import configure_tracing


def main() -> None:
    settings = get_settings()
    configure_logging(SERVICE_NAME, json=settings.json_logs, level=settings.log_level)
    configure_tracing(SERVICE_NAME, settings)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # our structlog set-up renders uvicorn's records
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        lifespan="on",
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
