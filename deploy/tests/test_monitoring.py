"""Prometheus rules, their unit tests and the Grafana dashboard.

`promtool check rules` and `promtool test rules` run on the rule file (promtool must be on PATH:
deploy/tests/install-tools.sh installs it). Every expression, in the rules and in every dashboard
panel, may use only the metric names docs/architecture.md documents (plus the rules' own
recorded series); dashboard queries are also syntax-checked by promtool."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import yaml
from deploy_support import DEPLOY, REPO, find_tool, load_module, render_overlay, run_tool

MONITORING = DEPLOY / "monitoring"
PROMETHEUS = MONITORING / "prometheus"
RULES = PROMETHEUS / "rules" / "conveyor.rules.yml"
RULE_TESTS = PROMETHEUS / "tests" / "conveyor.rules.test.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "conveyor.json"
OPERATIONS = REPO / "docs" / "operations.md"
ARCHITECTURE = REPO / "docs" / "architecture.md"

# The alert classes the issue asks for, by name.
REQUIRED_ALERTS = {
    "ConveyorBacklogGrowing",
    "ConveyorOutboxLag",
    "ConveyorEventStreamLag",
    "ConveyorDeadLettersRising",
    "ConveyorNoReadyWorkers",
    "ConveyorHighErrorRate",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "offset", "bool", "inf", "nan", "atan2",
}  # fmt: skip
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$namespace": ".*",
    "$queue": ".*",
}


def documented_metrics() -> set[str]:
    text = ARCHITECTURE.read_text()
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"`(conveyor_[a-z0-9_]+)", section))
    assert len(names) >= 15, "docs/architecture.md's Metrics section moved?"
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (a lexer, not a parser: strings, label
    matchers, ranges and grouping clauses are removed, then every identifier not followed by `(`
    and not a keyword is a metric)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*", s):
        if s[match.end() :].lstrip().startswith("(") or match.group(0) in PROMQL_WORDS:
            continue
        names.add(match.group(0))
    return names


def base_name(metric: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if metric.endswith(suffix):
            return metric.removesuffix(suffix)
    return metric


def load_rules() -> list[dict[str, Any]]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, expr) of every query in the dashboard, rows' nested panels included."""
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    stack = list(dashboard["panels"])
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        found += [(panel["title"], t["expr"]) for t in panel.get("targets", [])]
    return found


def github_anchors(markdown: str) -> set[str]:
    anchors = set()
    for heading in re.findall(r"^#{1,6} +(.+?)\s*$", markdown, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


# --- promtool ----------------------------------------------------------------------------------


def test_promtool_check_rules() -> None:
    result = run_tool([find_tool("promtool"), "check", "rules", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests() -> None:
    result = run_tool(
        [find_tool("promtool"), "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """A rule file where an alert can never fire must fail the same unit tests."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "ConveyorNoReadyWorkers":
                rule["expr"] = "vector(0) > 1"
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / RULES.name).write_text(yaml.safe_dump(rules))
    (tmp_path / "tests").mkdir()
    shutil.copy(RULE_TESTS, tmp_path / "tests" / RULE_TESTS.name)
    result = run_tool(
        [find_tool("promtool"), "test", "rules", RULE_TESTS.name], cwd=tmp_path / "tests"
    )
    assert result.returncode != 0
    assert "ConveyorNoReadyWorkers" in result.stdout + result.stderr


def test_compose_prometheus_config_is_valid(tmp_path: Path) -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    # Point rule_files at a copy of the rules where the container would mount them.
    shutil.copytree(PROMETHEUS / "rules", tmp_path / "rules")
    config["rule_files"] = [str(tmp_path / "rules" / "*.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = run_tool([find_tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


# --- the rules ---------------------------------------------------------------------------------


def test_the_required_alerts_exist() -> None:
    alerts = {rule["alert"] for rule in load_rules() if "alert" in rule}
    assert alerts >= REQUIRED_ALERTS


def test_every_alert_is_labelled_annotated_and_has_a_runbook() -> None:
    anchors = github_anchors(OPERATIONS.read_text())
    for rule in load_rules():
        if "alert" not in rule:
            continue
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"]
        assert annotations["description"]
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page == "docs/operations.md", rule["alert"]
        assert anchor == rule["alert"].lower(), rule["alert"]
        assert anchor in anchors, f"docs/operations.md has no section for {rule['alert']}"


def test_rules_use_only_documented_metrics() -> None:
    documented = documented_metrics()
    recorded = {rule["record"] for rule in load_rules() if "record" in rule}
    for rule in load_rules():
        used = {base_name(m) for m in metric_names(rule["expr"])}
        assert used, rule
        assert used <= documented | recorded, (
            f"{rule.get('alert') or rule.get('record')}: {used - documented - recorded}"
        )


def test_every_alert_has_firing_and_quiet_unit_tests() -> None:
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in load_rules() if "alert" in rule}
    assert alerts <= firing, f"never shown firing: {alerts - firing}"
    assert alerts <= quiet, f"never shown quiet: {alerts - quiet}"


def test_kubernetes_gets_the_same_rules() -> None:
    sync = load_module(MONITORING / "sync_prometheusrule.py", "sync_prometheusrule")
    shipped = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert shipped == sync.render(), "run: uv run python deploy/monitoring/sync_prometheusrule.py"
    rendered = [o for o in render_overlay("prod") if o["kind"] == "PrometheusRule"]
    assert rendered[0]["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


# --- the dashboard -----------------------------------------------------------------------------


def test_metric_name_extraction() -> None:
    """The checks below lean on this; it must find names and ignore everything else."""
    assert metric_names(
        'histogram_quantile(0.95, sum by (le, service) (rate(conveyor_http_request_duration_seconds_bucket{service=~"a|b"}[5m])))'
    ) == {"conveyor_http_request_duration_seconds_bucket"}
    assert metric_names(
        "max by (namespace) (conveyor_dead_letters) - max by (namespace) (conveyor_dead_letters offset 15m) > 0"
    ) == {"conveyor_dead_letters"}
    assert metric_names("a:b:c > 1e3 and on (x) absent(up)") == {"a:b:c", "up"}
    assert metric_names('sum(rate(foo_total{status=~"5.."}[$__rate_interval])) / bar') == {
        "foo_total",
        "bar",
    }


def test_dashboard_parses_and_has_the_required_views() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "conveyor-overview"
    titles = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert titles == ["Overview", "Throughput", "Latency", "Backlog", "Failures and dead letters"]
    exprs = " ".join(expr for _, expr in dashboard_exprs())
    for needle in (
        "conveyor_jobs_finished_total",  # throughput
        "histogram_quantile",  # latency
        "conveyor_jobs_backlog",  # backlog
        'status="FAILED"',  # failures
        "conveyor_dead_letters",  # dead letters
        "conveyor_outbox_lag_seconds",
        "conveyor_events_pending",
        "conveyor_workers",
    ):
        assert needle in exprs, needle


def test_dashboard_uses_only_documented_metrics() -> None:
    documented = documented_metrics()
    for title, expr in dashboard_exprs():
        used = {base_name(m) for m in metric_names(expr)}
        assert used, title
        assert used <= documented, f"{title}: {used - documented}"
    variables = json.loads(DASHBOARD.read_text())["templating"]["list"]
    for var in variables:
        if var["type"] == "query":
            (metric,) = re.findall(r"label_values\((\w+),", var["definition"])
            assert metric in documented, var["name"]


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    rules = []
    for n, (_, expr) in enumerate(dashboard_exprs()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"unknown Grafana variable in {expr}"
        rules.append({"record": f"dashboard:query_{n}", "expr": expr})
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_tool([find_tool("promtool"), "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_panels_use_the_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    (datasource,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert datasource["query"] == "prometheus"
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])


def test_kubernetes_gets_the_same_dashboard() -> None:
    (config_map,) = [
        o
        for o in render_overlay("prod")
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "conveyor-grafana-dashboard"
    ]
    assert json.loads(config_map["data"]["conveyor.json"]) == json.loads(DASHBOARD.read_text())
