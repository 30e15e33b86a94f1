"""`make test`: runs each workspace member's tests in a pytest process of its own, then prints
one summary line for all of them.

One process per member, because members are separate programs: two services may register the
same Prometheus metric name in the default registry, or define fixtures of the same name, and
that is only a conflict when both are imported into one process.

A member whose folder has no tests yet (pytest's exit code 5) is not a failure; nothing having
run at all is.

Folders run `--jobs` at a time (default 2, or CONVEYOR_TEST_JOBS): most of the suite's time is
spent waiting on service processes, stores and lease timers, not on the CPU, so two lanes on two
cores roughly halve the wall time. Each folder's output is held back and printed whole when it
finishes, so the log reads folder by folder. Folders are started in the order given: put the
longest first.

Usage: python .ci/run_tests.py [--jobs N] TEST_DIR... [-- PYTEST_ARGS...]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

NO_TESTS_COLLECTED = 5


@dataclass
class Outcome:
    folder: str
    code: int
    seconds: float
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.code in (0, NO_TESTS_COLLECTED)


def _counts(junit: Path, outcome: Outcome) -> None:
    if not junit.exists():
        return
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    for suite in suites:
        tests = int(suite.get("tests", 0))
        failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        outcome.failed += failed
        outcome.skipped += skipped
        outcome.passed += tests - failed - skipped
    # Named again under the summary: the tail of a long log is often all a CI page shows.
    for case in root.iter("testcase"):
        for problem in (*case.findall("failure"), *case.findall("error")):
            reason = (problem.get("message") or "").strip().splitlines()[:1]
            test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
            outcome.failures.append(f"{test_id}  {reason[0][:200] if reason else ''}")


_print_lock = threading.Lock()


def _say(text: str) -> None:
    with _print_lock:
        sys.stdout.write(text)
        sys.stdout.flush()


def run(folder: str, pytest_args: list[str], scratch: Path, *, live: bool) -> Outcome:
    name = folder.replace("/", "_")
    junit = scratch / f"{name}.xml"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={junit}",
               *pytest_args, folder]  # fmt: skip
    started = time.monotonic()
    if live:
        _say(f"\n=== {folder}\n")
        code = subprocess.call(command, stdin=subprocess.DEVNULL)
    else:
        _say(f"--- started {folder}\n")
        log = scratch / f"{name}.log"
        with log.open("wb") as sink:
            code = subprocess.call(
                command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT
            )
        _say(f"\n=== {folder} ({time.monotonic() - started:.0f} s)\n"
             + log.read_text(errors="replace"))  # fmt: skip
    outcome = Outcome(folder, code, time.monotonic() - started)
    _counts(junit, outcome)
    if not outcome.ok and outcome.failed == 0:
        outcome.failed = 1  # interrupted or broken collection: counts as a failure
    return outcome


def main(argv: list[str]) -> int:
    jobs = int(os.environ.get("CONVEYOR_TEST_JOBS", "2"))
    if argv[:1] == ["--jobs"]:
        jobs, argv = int(argv[1]), argv[2:]
    if "--" in argv:
        split = argv.index("--")
        folders, pytest_args = argv[:split], argv[split + 1 :]
    else:
        folders, pytest_args = argv, []
    # Given in order, each once (a folder may be named both explicitly and by a wildcard).
    folders = list(dict.fromkeys(f.rstrip("/") for f in folders if Path(f).is_dir()))
    if not folders:
        sys.stderr.write("no test folders given\n")
        return 1
    jobs = max(1, min(jobs, len(folders)))
    with tempfile.TemporaryDirectory(prefix="conveyor-tests-") as scratch:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            runs = [
                pool.submit(run, folder, pytest_args, Path(scratch), live=jobs == 1)
                for folder in folders
            ]
            outcomes = [r.result() for r in runs]

    sys.stdout.write("\n=== summary\n")
    for o in outcomes:
        state = "ok" if o.ok else f"FAILED (exit {o.code})"
        if o.code == NO_TESTS_COLLECTED:
            state = "no tests"
        sys.stdout.write(
            f"{o.folder:<36} {o.passed:>5} passed {o.failed:>4} failed {o.skipped:>4} skipped "
            f"{o.seconds:>7.1f}s  {state}\n"
        )
    for o in outcomes:
        for failure in o.failures:
            sys.stdout.write(f"  FAILED {failure}\n")
    passed = sum(o.passed for o in outcomes)
    failed = sum(o.failed for o in outcomes)
    skipped = sum(o.skipped for o in outcomes)
    sys.stdout.write(f"tests: {passed} passed, {failed} failed, {skipped} skipped\n")
    if not all(o.ok for o in outcomes):
        return 1
    if passed + failed == 0:
        sys.stderr.write("no test ran at all\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
