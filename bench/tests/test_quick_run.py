"""`make bench`'s quick mode, once, end to end: every scenario ran, the JSON holds each of
them with the machine, versions and settings, and the table was printed. Nothing here checks
a speed (that is the bench's own job); it only proves the bench still works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.bench]

SCENARIOS = (
    "yardstick",
    "http_floor",
    "batch_submit",
    "drain",
    "single_submit",
    "steady",
    "cost_batch",
    "cost_single",
)


@pytest.mark.timeout(600)
def test_quick_bench_writes_every_scenario_and_prints_the_table(tmp_path: Path) -> None:
    out = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    completed = subprocess.run(
        [sys.executable, "-m", "conveyor_bench", "--quick", "--out", str(out),
         "--log-dir", str(tmp_path / "logs")],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=570,
        check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:]

    files = list(out.glob("*-quick.json"))
    assert len(files) == 1, files
    results = json.loads(files[0].read_text())
    for scenario in SCENARIOS:
        assert results.get(scenario), f"{scenario} missing from the JSON"
    assert "soak" not in results  # not in --quick
    assert results["yardstick"]["drain"]["jobs"] == results["drain"]["jobs"]
    assert results["yardstick"]["drain"]["drain_per_second"] > 0
    assert results["drain"]["drained_per_second"] > 0
    assert results["single_submit"]["jobs"] > 0
    assert results["http_floor"]["requests"] > 0
    assert results["steady"]["submit_to_started"]["count"] > 0
    assert results["cost_batch"]["cpu_seconds_per_1000_jobs"]["job-service"] > 0
    assert results["final_counts"] == {"SUCCEEDED": results["final_counts"]["SUCCEEDED"]}
    for key in ("cores", "memory_bytes", "cpu_model"):
        assert results["machine"][key]
    for key in ("python", "celery", "kombu", "redis-py", "postgresql", "redis"):
        assert results["versions"][key], key
    assert results["settings"]["mode"] == "quick"
    assert results["settings"]["pool"] == "prefork"
    assert results["date"]

    table = completed.stdout
    assert "bare celery" in table
    for row in results["table"]:
        assert row["name"] in table
    assert f"results: {files[0]}" in table
