"""NetworkPolicies, evaluated: a small model of Kubernetes' ingress semantics (a pod selected by
no policy accepts everything; a selected pod accepts what any selecting policy allows) answers
who can reach whom in the rendered overlays. The invariants: default deny, only the gateway
reachable from outside the namespace, only job-service (and the migration Job) reach PostgreSQL,
only the gateway calls job-service and result-service, and every client still reaches the
servers it is configured for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from deploy_support import of_kind

INGRESS_NAMESPACE = "ingress-nginx"
MONITORING_NAMESPACE = "monitoring"


@dataclass(frozen=True)
class Peer:
    """A pod somewhere: its labels and its namespace's labels."""

    name: str
    labels: dict[str, str]
    namespace: str
    namespace_labels: dict[str, str] = field(default_factory=dict)


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        present = key in labels
        if op == "In" and (not present or labels[key] not in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def peer_allowed(rule_from: list[dict[str, Any]] | None, src: Peer, policy_namespace: str) -> bool:
    if not rule_from:
        return True
    for peer in rule_from:
        pod_sel = peer.get("podSelector")
        ns_sel = peer.get("namespaceSelector")
        if pod_sel is None and ns_sel is None:
            continue  # ipBlock: never matches a pod peer here
        if ns_sel is None:
            ns_ok = src.namespace == policy_namespace
        else:
            ns_ok = matches(ns_sel, src.namespace_labels)
        if ns_ok and matches(pod_sel or {}, src.labels):
            return True
    return False


def port_allowed(ports: list[dict[str, Any]] | None, port: int) -> bool:
    return not ports or any(p.get("port") == port for p in ports)


def can_reach(policies: list[dict[str, Any]], src: Peer, dst: Peer, port: int) -> bool:
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == dst.namespace
        and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and matches(p["spec"]["podSelector"], dst.labels)
    ]
    if not selecting:
        return True
    return any(
        peer_allowed(rule.get("from"), src, dst.namespace) and port_allowed(rule.get("ports"), port)
        for policy in selecting
        for rule in policy["spec"].get("ingress", [])
    )


def in_namespace_pods(objects: list[dict[str, Any]]) -> dict[str, Peer]:
    (ns_obj,) = of_kind(objects, "Namespace")
    ns = ns_obj["metadata"]["name"]
    ns_labels = {"kubernetes.io/metadata.name": ns, **ns_obj["metadata"].get("labels", {})}
    pods = {
        o["metadata"]["name"]: Peer(
            o["metadata"]["name"], o["spec"]["template"]["metadata"]["labels"], ns, ns_labels
        )
        for o in objects
        if o["kind"] in ("Deployment", "Job")
    }
    # Pods the operators create, with the labels they give them.
    (cluster,) = of_kind(objects, "Cluster")
    (replication,) = of_kind(objects, "RedisReplication")
    (sentinel,) = of_kind(objects, "RedisSentinel")
    pods["postgres"] = Peer(
        "postgres", {"cnpg.io/cluster": cluster["metadata"]["name"]}, ns, ns_labels
    )
    pods["redis"] = Peer("redis", {"app": replication["metadata"]["name"]}, ns, ns_labels)
    pods["sentinel"] = Peer(
        "sentinel", {"app": f"{sentinel['metadata']['name']}-sentinel"}, ns, ns_labels
    )
    return pods


def outside(namespace: str) -> Peer:
    return Peer(
        f"{namespace}-pod",
        {"app": "anything"},
        namespace,
        {"kubernetes.io/metadata.name": namespace},
    )


def listening(objects: list[dict[str, Any]], pods: dict[str, Peer]) -> list[tuple[Peer, int]]:
    """Every (pod, port) that serves something."""
    targets = []
    for dep in of_kind(objects, "Deployment"):
        for c in dep["spec"]["template"]["spec"]["containers"]:
            targets += [
                (pods[dep["metadata"]["name"]], p["containerPort"]) for p in c.get("ports", [])
            ]
    targets += [
        (pods["postgres"], 5432),
        (pods["postgres"], 8000),
        (pods["redis"], 6379),
        (pods["sentinel"], 26379),
    ]
    return targets


@pytest.fixture
def policies(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return of_kind(objects, "NetworkPolicy")


def test_the_model_reads_policies_as_kubernetes_does() -> None:
    """The model must say 'no' when a policy says no, or the tests below prove nothing."""
    ns = "n"
    a = Peer("a", {"app": "a"}, ns)
    b = Peer("b", {"app": "b"}, ns)
    deny = {"metadata": {"namespace": ns}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    allow_a = {
        "metadata": {"namespace": ns},
        "spec": {
            "podSelector": {"matchLabels": {"app": "b"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"app": "a"}}}], "ports": [{"port": 80}]}
            ],
        },
    }
    assert can_reach([], a, b, 80)
    assert not can_reach([deny], a, b, 80)
    assert can_reach([deny, allow_a], a, b, 80)
    assert not can_reach([deny, allow_a], a, b, 81)
    assert not can_reach([deny, allow_a], b, a, 80)
    assert not can_reach([deny, allow_a], Peer("x", {"app": "a"}, "other"), b, 80)


def test_ingress_is_denied_by_default(policies: list[dict[str, Any]]) -> None:
    defaults = [
        p for p in policies if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")
    ]
    assert defaults
    assert "Ingress" in defaults[0]["spec"]["policyTypes"]


def test_only_the_gateway_is_reachable_from_outside(
    objects: list[dict[str, Any]], policies: list[dict[str, Any]]
) -> None:
    pods = in_namespace_pods(objects)
    for namespace in (INGRESS_NAMESPACE, "default", "some-tenant"):
        reachable = {
            (dst.name, port)
            for dst, port in listening(objects, pods)
            if can_reach(policies, outside(namespace), dst, port)
        }
        expected = {("api-gateway", 8000)} if namespace == INGRESS_NAMESPACE else set()
        assert reachable == expected, namespace


def test_monitoring_reaches_only_metrics_ports(
    objects: list[dict[str, Any]], policies: list[dict[str, Any]]
) -> None:
    pods = in_namespace_pods(objects)
    reachable = {
        (dst.name, port)
        for dst, port in listening(objects, pods)
        if can_reach(policies, outside(MONITORING_NAMESPACE), dst, port)
    }
    assert reachable == {
        ("api-gateway", 8000),
        ("job-service", 8001),
        ("result-service", 8002),
        ("worker", 8003),
    }


def test_only_job_service_reaches_postgres(
    objects: list[dict[str, Any]], policies: list[dict[str, Any]]
) -> None:
    pods = in_namespace_pods(objects)
    clients = {
        name
        for name, pod in pods.items()
        if name not in {"postgres"} and can_reach(policies, pod, pods["postgres"], 5432)
    }
    assert clients == {"job-service", "conveyor-migrate"}


def test_only_the_gateway_calls_the_internal_services(
    objects: list[dict[str, Any]], policies: list[dict[str, Any]]
) -> None:
    pods = in_namespace_pods(objects)
    for service, port in (("job-service", 8001), ("result-service", 8002)):
        callers = {
            name for name, pod in pods.items() if can_reach(policies, pod, pods[service], port)
        }
        assert callers == {"api-gateway"}, service


def test_every_client_reaches_its_servers(
    objects: list[dict[str, Any]], policies: list[dict[str, Any]]
) -> None:
    """The policies must not break the application: whoever is configured with a Redis or
    database URL can open that connection."""
    pods = in_namespace_pods(objects)
    for workload in [*of_kind(objects, "Deployment"), *of_kind(objects, "Job")]:
        name = workload["metadata"]["name"]
        env = {
            e["name"]
            for c in workload["spec"]["template"]["spec"]["containers"]
            for e in c.get("env", [])
        }
        if "CONVEYOR_REDIS_URL" in env:
            assert can_reach(policies, pods[name], pods["redis"], 6379), name
        if env & {"CONVEYOR_DATABASE_URL", "CONVEYOR_DATABASE_MIGRATION_URL"}:
            assert can_reach(policies, pods[name], pods["postgres"], 5432), name
    assert can_reach(policies, pods["api-gateway"], pods["job-service"], 8001)
    assert can_reach(policies, pods["api-gateway"], pods["result-service"], 8002)
    # Replication, failover and the autoscaler.
    assert can_reach(policies, pods["postgres"], pods["postgres"], 5432)
    assert can_reach(policies, pods["sentinel"], pods["redis"], 6379)
    assert can_reach(policies, pods["sentinel"], pods["sentinel"], 26379)
    assert can_reach(policies, outside("keda"), pods["redis"], 6379)
    assert can_reach(policies, outside("cnpg-system"), pods["postgres"], 8000)
