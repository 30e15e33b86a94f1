"""The app for Celery's own command line: `celery -A conveyor_worker.celery_app worker ...`.

Nothing is built at import: `app` is made on first access, from the environment's settings.
`python -m conveyor_worker` is the supported entry point (it adds the health server and
metrics set-up); this exists for Celery's inspection and control commands.
"""

from __future__ import annotations

from functools import lru_cache

from celery import Celery


@lru_cache(maxsize=1)
def get_app() -> Celery:
    from conveyor_worker.app import create_worker_app
    from conveyor_worker.config import get_settings
    from conveyor_worker.discovery import collect

    settings = get_settings()
    registry = collect(http_policy=settings.http_policy(), task_modules=settings.task_modules)
    app, _runtime = create_worker_app(settings, registry)
    return app


def __getattr__(name: str) -> Celery:
    if name in ("app", "celery"):
        return get_app()
    raise AttributeError(name)
