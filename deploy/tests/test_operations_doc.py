"""docs/operations.md covers what the issue asks for and stays in step with the artifacts: every
Secret the manifests reference and every compose secret is documented, the metrics list matches
docs/architecture.md, and the worker grace period it explains is the one deployed."""

from __future__ import annotations

import re
from typing import Any

from deploy_support import OVERLAYS, REPO, render_overlay

OPERATIONS = (REPO / "docs" / "operations.md").read_text()


def headings() -> list[str]:
    return re.findall(r"^#{2,3} +(.+?)\s*$", OPERATIONS, flags=re.MULTILINE)


def referenced_secrets(objects: list[dict[str, Any]]) -> set[str]:
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("secretKeyRef", "secretRef", "passwordSecret"):
                if key in node and "name" in node[key]:
                    names.add(node[key]["name"])
            if "secretName" in node:
                names.add(node["secretName"])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(objects)
    for obj in objects:
        if obj["kind"] == "TriggerAuthentication":
            names |= {ref["name"] for ref in obj["spec"]["secretTargetRef"]}
        if obj["kind"] in {"RedisReplication", "RedisSentinel"}:
            names.add(obj["spec"]["kubernetesConfig"]["redisSecret"]["name"])
        if obj["kind"] == "ObjectStore":
            creds = obj["spec"]["configuration"]["s3Credentials"]
            names |= {creds["accessKeyId"]["name"], creds["secretAccessKey"]["name"]}
    return names


def test_the_required_sections_exist() -> None:
    found = " | ".join(headings()).lower()
    for topic in (
        "secrets",
        "deploy with docker compose",
        "deploy on kubernetes",
        "scale",
        "upgrade with migrations",
        "back up",
        "rotate secrets",
        "runbooks",
        "metrics",
        "worker shutdown and the grace period",
    ):
        assert topic in found, topic


def test_every_referenced_secret_is_documented() -> None:
    for overlay in OVERLAYS:
        for name in referenced_secrets(render_overlay(overlay)):
            assert f"`{name}`" in OPERATIONS, (
                f"{overlay}: Secret {name} is not in docs/operations.md"
            )


def test_every_compose_secret_is_documented() -> None:
    compose = (REPO / "docker-compose.yml").read_text()
    for name in set(re.findall(r"\$\{(\w+):\?", compose)):
        assert f"`{name}`" in OPERATIONS, name


def test_metrics_list_matches_the_architecture() -> None:
    architecture = (REPO / "docs" / "architecture.md").read_text().split("## Metrics", 1)[1]
    documented = set(re.findall(r"`(conveyor_[a-z0-9_]+)", architecture))
    listed = set(re.findall(r"^\| `(conveyor_[a-z0-9_]+)", OPERATIONS, flags=re.MULTILINE))
    assert listed == documented


def test_the_grace_period_explained_is_the_one_deployed() -> None:
    (worker,) = [
        o
        for o in render_overlay("prod")
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "worker"
    ]
    grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert f"**{grace:,} s**" in OPERATIONS
    assert f"stop_grace_period: {grace}s" in (REPO / "docker-compose.yml").read_text()
