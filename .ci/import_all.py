"""Imports a package and every one of its submodules, so a module whose dependency is not
declared (a "phantom" that only worked because the workspace shares one venv) fails here.

Run with the interpreter of a venv synced for that one package:
`python .ci/import_all.py job_service`. Entry points (`__main__`) and Alembic's migration
scripts, which run on import, are skipped."""

from __future__ import annotations

import importlib
import pkgutil
import sys

SKIPPED_PARTS = {"__main__", "migrations"}


def import_all(package_name: str) -> int:
    package = importlib.import_module(package_name)
    count = 1

    def fail(name: str) -> None:
        raise ImportError(f"cannot import {name}")

    for info in pkgutil.walk_packages(package.__path__, f"{package_name}.", onerror=fail):
        if SKIPPED_PARTS.intersection(info.name.split(".")):
            continue
        importlib.import_module(info.name)
        count += 1
    return count


if __name__ == "__main__":
    for name in sys.argv[1:]:
        sys.stdout.write(f"{name}: {import_all(name)} modules imported\n")
