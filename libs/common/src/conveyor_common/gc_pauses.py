"""Keeping the garbage collector's full collections short in long-running processes.

CPython's full (generation 2) collection walks every tracked object the process holds. After
start-up that is hundreds of thousands of objects nobody will ever free (modules, classes,
pydantic and SQLAlchemy schemas), so each full collection stopped a service for 80 to 140 ms here,
about once a second under load (measured with `gc.callbacks` during `make bench`): every request
in flight waited that long, which is most of a p99. Freezing what exists once start-up is done
moves it to the permanent generation the collector skips; the collections that remain walk only
what the process made since.
"""

from __future__ import annotations

import gc
import os

# The process that froze; a forked child inherits this value and freezes its own copy.
_frozen_in: int | None = None


def freeze_startup_objects() -> None:
    """Collects start-up garbage once, then freezes every object that survived (see module
    doc). Call it when the process is ready to serve, and in each forked pool child (a child's
    collector state is its own). Once per process: an app started again in the same process
    (tests) would only pay for another full collection."""
    global _frozen_in
    if _frozen_in == os.getpid():
        return
    _frozen_in = os.getpid()
    gc.collect()
    gc.freeze()
