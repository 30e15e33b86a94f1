"""Every Kubernetes overlay renders with kustomize, every object validates against the Kubernetes
schemas (offline, strict), and the rendered output keeps the operational invariants: probes,
resources, security contexts, no inlined secrets, autoscaling, disruption budgets, monitoring,
the migration Job, and a worker grace period longer than any task may run.

Custom resources (KEDA, Prometheus Operator, CloudNativePG, redis-operator) are not in the
Kubernetes schemas: CRD_SCHEMAS below checks the fields this project relies on, and the
cross-reference tests check that they point at objects that exist."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from deploy_support import OVERLAYS, SchemaNotFound, k8s_validate, of_kind, render_overlay

from conveyor_common.celery_app import celery_config
from conveyor_common.messages import kombu_priority, queue_key
from conveyor_common.redis_keys import RedisKeys

# The oldest Kubernetes minor this project supports and the newest the validator knows.
K8S_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
HTTP_SERVICES = {"api-gateway": 8000, "job-service": 8001, "result-service": 8002}
APP_DEPLOYMENTS = {*HTTP_SERVICES, "worker"}
WORKLOAD_KINDS = ("Deployment", "Job")
DATABASE_URLS = {"CONVEYOR_DATABASE_URL", "CONVEYOR_DATABASE_MIGRATION_URL"}
SECRETISH = re.compile(r"PASSWORD|TOKEN|SECRET|BASIC_AUTH|API_KEY|CREDENTIAL", re.IGNORECASE)

_QUANTITY = {"type": ["string", "integer"]}
_SECRET_KEY_REF = {
    "type": "object",
    "required": ["name", "key"],
    "properties": {"name": {"type": "string"}, "key": {"type": "string"}},
}
# Minimal shapes of the custom resources used here (fields this project relies on). The full CRD
# schemas are not available offline; these catch typos and missing required fields.
CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["scaleTargetRef", "triggers"],
                "properties": {
                    "scaleTargetRef": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": {"type": "string"}, "kind": {"type": "string"}},
                    },
                    "minReplicaCount": {"type": "integer", "minimum": 0},
                    "maxReplicaCount": {"type": "integer", "minimum": 1},
                    "pollingInterval": {"type": "integer", "minimum": 1},
                    "cooldownPeriod": {"type": "integer", "minimum": 0},
                    "triggers": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["type", "metadata"],
                            "properties": {
                                "type": {"type": "string"},
                                "metadata": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                },
                                "authenticationRef": {
                                    "type": "object",
                                    "required": ["name"],
                                },
                            },
                        },
                    },
                },
            }
        },
    },
    ("keda.sh/v1alpha1", "TriggerAuthentication"): {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["secretTargetRef"],
                "properties": {
                    "secretTargetRef": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "object", "required": ["parameter", "name", "key"]},
                    }
                },
            }
        },
    },
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "properties": {
                    "selector": {"type": "object"},
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["port"],
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string", "pattern": "^/"},
                                "interval": {"type": "string", "pattern": "^[0-9]+[smh]$"},
                                "honorLabels": {"type": "boolean"},
                            },
                        },
                    },
                },
            }
        },
    },
    ("monitoring.coreos.com/v1", "PrometheusRule"): {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["groups"],
                "properties": {
                    "groups": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "object", "required": ["name", "rules"]},
                    }
                },
            }
        },
    },
    ("postgresql.cnpg.io/v1", "Cluster"): {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["instances", "storage", "bootstrap"],
                "properties": {
                    "instances": {"type": "integer", "minimum": 1},
                    "imageName": {"type": "string"},
                    "storage": {
                        "type": "object",
                        "required": ["size"],
                        "properties": {"size": {"type": "string"}},
                    },
                    "bootstrap": {
                        "type": "object",
                        "required": ["initdb"],
                        "properties": {
                            "initdb": {
                                "type": "object",
                                "required": ["database", "owner"],
                            }
                        },
                    },
                    "managed": {
                        "type": "object",
                        "properties": {
                            "roles": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["name"],
                                    "properties": {
                                        "name": {"type": "string"},
                                        "ensure": {"enum": ["present", "absent"]},
                                        "login": {"type": "boolean"},
                                        "superuser": {"type": "boolean"},
                                        "createdb": {"type": "boolean"},
                                        "createrole": {"type": "boolean"},
                                        "inherit": {"type": "boolean"},
                                        "passwordSecret": {
                                            "type": "object",
                                            "required": ["name"],
                                            "additionalProperties": False,
                                            "properties": {"name": {"type": "string"}},
                                        },
                                    },
                                },
                            }
                        },
                    },
                    "postgresql": {
                        "type": "object",
                        "properties": {
                            "parameters": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            }
                        },
                    },
                    "plugins": {
                        "type": "array",
                        "items": {"type": "object", "required": ["name"]},
                    },
                },
            }
        },
    },
    ("postgresql.cnpg.io/v1", "ScheduledBackup"): {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["schedule", "cluster"],
                "properties": {
                    # CloudNativePG's schedule has six fields, seconds first.
                    "schedule": {"type": "string", "pattern": r"^\S+( \S+){5}$"},
                    "cluster": {"type": "object", "required": ["name"]},
                    "method": {"enum": ["barmanObjectStore", "volumeSnapshot", "plugin"]},
                },
            }
        },
    },
    ("barmancloud.cnpg.io/v1", "ObjectStore"): {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["configuration"],
                "properties": {
                    "retentionPolicy": {"type": "string", "pattern": "^[1-9][0-9]*[dwm]$"},
                    "configuration": {
                        "type": "object",
                        "required": ["destinationPath"],
                        "properties": {
                            "s3Credentials": {
                                "type": "object",
                                "properties": {
                                    "accessKeyId": _SECRET_KEY_REF,
                                    "secretAccessKey": _SECRET_KEY_REF,
                                },
                            }
                        },
                    },
                },
            }
        },
    },
    ("redis.redis.opstreelabs.in/v1beta2", "RedisReplication"): {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["clusterSize", "kubernetesConfig"],
                "properties": {
                    "clusterSize": {"type": "integer", "minimum": 1},
                    "kubernetesConfig": {
                        "type": "object",
                        "required": ["image"],
                        "properties": {
                            "redisSecret": _SECRET_KEY_REF,
                            "resources": {"type": "object"},
                        },
                    },
                    "redisConfig": {
                        "type": "object",
                        "properties": {"additionalRedisConfig": {"type": "string"}},
                    },
                    "storage": {"type": "object", "required": ["volumeClaimTemplate"]},
                },
            }
        },
    },
    ("redis.redis.opstreelabs.in/v1beta2", "RedisSentinel"): {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["clusterSize", "redisSentinelConfig", "kubernetesConfig"],
                "properties": {
                    "clusterSize": {"type": "integer", "minimum": 1},
                    "redisSentinelConfig": {
                        "type": "object",
                        "required": ["redisReplicationName"],
                        "properties": {
                            # The operator's CRD types these as strings.
                            "quorum": {"type": "string", "pattern": "^[0-9]+$"},
                            "downAfterMilliseconds": {"type": "string", "pattern": "^[0-9]+$"},
                            "failoverTimeout": {"type": "string", "pattern": "^[0-9]+$"},
                            "parallelSyncs": {"type": "string", "pattern": "^[0-9]+$"},
                        },
                    },
                    "kubernetesConfig": {"type": "object", "required": ["image"]},
                },
            }
        },
    },
}


def pod_specs(objs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(Kind/name, pod spec) of every workload."""
    return [
        (f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"])
        for o in objs
        if o["kind"] in WORKLOAD_KINDS
    ]


def containers(objs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(Kind/name/container, container, pod spec) of every workload container."""
    return [
        (f"{owner}/{c['name']}", c, spec)
        for owner, spec in pod_specs(objs)
        for c in [*spec.get("initContainers", []), *spec["containers"]]
    ]


def env_map(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def config_value(objs: list[dict[str, Any]], key: str) -> str:
    (config,) = [
        o
        for o in objs
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("conveyor-config")
    ]
    return str(config["data"][key])


def deployment(objs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (found,) = of_kind(objs, "Deployment", name)
    return found


def main_container(objs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return dict(deployment(objs, name)["spec"]["template"]["spec"]["containers"][0])


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


# --- rendering and schemas ---------------------------------------------------------------------


def test_every_overlay_is_tested() -> None:
    assert set(OVERLAYS) >= {"dev", "prod"}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_objects_validate_against_kubernetes_schemas(
    objects: list[dict[str, Any]], version: str
) -> None:
    unchecked = []
    errors = []
    for obj in objects:
        ident = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            errors += [f"{ident}: {message}" for message in k8s_validate(obj, version)]
        except SchemaNotFound:
            if (obj["apiVersion"], obj["kind"]) not in CRD_SCHEMAS:
                unchecked.append(f"{obj['apiVersion']} {ident}")
    assert not errors, "\n".join(errors)
    assert not unchecked, f"no schema at all for: {unchecked} (add one to CRD_SCHEMAS)"


def test_custom_resources_have_the_expected_shape(objects: list[dict[str, Any]]) -> None:
    checked = set()
    for obj in objects:
        schema = CRD_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
        if schema is not None:
            jsonschema.validate(obj, schema)
            checked.add(obj["kind"])
    assert checked >= {
        "ScaledObject",
        "TriggerAuthentication",
        "ServiceMonitor",
        "PrometheusRule",
        "Cluster",
        "RedisReplication",
        "RedisSentinel",
    }


def test_the_validators_are_strict() -> None:
    """A typo must fail: otherwise the two tests above could pass on anything."""
    objs = render_overlay("dev")
    bad = {**deployment(objs, "worker")}
    bad["spec"] = {**bad["spec"], "replicaz": 3}
    errors = k8s_validate(bad, K8S_VERSIONS[0])
    assert any("replicaz" in message for message in errors)
    assert not k8s_validate(deployment(objs, "worker"), K8S_VERSIONS[0])
    (scaled,) = of_kind(objs, "ScaledObject")
    broken = {**scaled, "spec": {k: v for k, v in scaled["spec"].items() if k != "scaleTargetRef"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, CRD_SCHEMAS[("keda.sh/v1alpha1", "ScaledObject")])


def test_everything_lands_in_the_overlay_namespace(objects: list[dict[str, Any]]) -> None:
    (namespace,) = of_kind(objects, "Namespace")
    name = namespace["metadata"]["name"]
    stray = [
        f"{o['kind']}/{o['metadata']['name']}"
        for o in objects
        if o["kind"] != "Namespace" and o["metadata"].get("namespace") != name
    ]
    assert not stray


# --- workloads ---------------------------------------------------------------------------------


def test_expected_workloads_exist(objects: list[dict[str, Any]]) -> None:
    names = {o["metadata"]["name"] for o in of_kind(objects, "Deployment")}
    assert names == {*APP_DEPLOYMENTS, "flower"}
    assert of_kind(objects, "Job", "conveyor-migrate")


def test_every_deployment_container_has_liveness_and_readiness_probes(
    objects: list[dict[str, Any]],
) -> None:
    for dep in of_kind(objects, "Deployment"):
        for c in dep["spec"]["template"]["spec"]["containers"]:
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            for probe_name in ("livenessProbe", "readinessProbe"):
                probe = c.get(probe_name)
                assert probe, f"{dep['metadata']['name']}/{c['name']} has no {probe_name}"
                port = probe["httpGet"]["port"]
                assert port in ports or port in ports.values(), (
                    f"{probe_name} port {port} undeclared"
                )


def test_http_services_probe_healthz_and_readyz(objects: list[dict[str, Any]]) -> None:
    for name in [*HTTP_SERVICES, "worker"]:
        c = main_container(objects, name)
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_every_container_has_requests_and_limits(objects: list[dict[str, Any]]) -> None:
    for ident, c, _ in containers(objects):
        resources = c.get("resources", {})
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{ident} lacks {kind}"


def test_every_pod_is_locked_down(objects: list[dict[str, Any]]) -> None:
    for owner, spec in pod_specs(objects):
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", owner
        assert spec.get("automountServiceAccountToken") is False, owner
        assert not spec.get("hostNetwork"), owner
        assert not spec.get("hostPID"), owner
    for ident, c, spec in containers(objects):
        sc = c.get("securityContext", {})
        pod_sc = spec.get("securityContext", {})
        assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, ident
        assert sc.get("runAsUser", pod_sc.get("runAsUser", 0)) != 0, ident
        assert sc.get("allowPrivilegeEscalation") is False, ident
        assert sc.get("readOnlyRootFilesystem") is True, ident
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], ident
        assert not sc.get("privileged"), ident


def test_read_only_containers_get_a_writable_tmp(objects: list[dict[str, Any]]) -> None:
    for ident, c, _ in containers(objects):
        mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
        assert "/tmp" in mounts, ident


def test_worker_grace_outlasts_the_longest_task(objects: list[dict[str, Any]]) -> None:
    """SIGKILL must not come before Celery's hard time limit ends a task (pitfall #22): the
    warm shutdown waits for running tasks, which Celery stops at task_time_limit at the latest."""
    hard_limit = celery_config(broker_url="redis://x", result_backend_url="redis://x")[
        "task_time_limit"
    ]
    spec = deployment(objects, "worker")["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] > hard_limit
    # A short grace anywhere else is fine; the HTTP services drain in seconds.
    for name in HTTP_SERVICES:
        grace = deployment(objects, name)["spec"]["template"]["spec"][
            "terminationGracePeriodSeconds"
        ]
        assert 20 <= grace < hard_limit


def test_worker_keeps_the_images_signal_handling(objects: list[dict[str, Any]]) -> None:
    """Overriding `command` would drop the image's tini entrypoint, and a shell in front would
    swallow or broadcast SIGTERM; neither may appear on a worker."""
    c = main_container(objects, "worker")
    assert "command" not in c
    assert "args" not in c
    for ident, c, _ in containers(objects):
        argv = [*c.get("command", []), *c.get("args", [])]
        assert not (argv and argv[0] in {"sh", "bash", "/bin/sh", "/bin/bash"}), ident


def test_scaled_deployments_leave_replicas_to_the_autoscaler(objects: list[dict[str, Any]]) -> None:
    for name in APP_DEPLOYMENTS:
        assert "replicas" not in deployment(objects, name)["spec"], name


def test_worker_rollout_never_drops_capacity(objects: list[dict[str, Any]]) -> None:
    rolling = deployment(objects, "worker")["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0


# --- configuration and secrets -----------------------------------------------------------------


def test_no_secret_is_inlined(objects: list[dict[str, Any]]) -> None:
    secrets = of_kind(objects, "Secret")
    assert not [s for s in secrets if s.get("data") or s.get("stringData")]
    for ident, c, _ in containers(objects):
        for var in c.get("env", []):
            if SECRETISH.search(var["name"]):
                assert "secretKeyRef" in var.get("valueFrom", {}), (
                    f"{ident}: {var['name']} not from a Secret"
                )
        secret_vars = {
            e["name"] for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})
        }
        for var in c.get("env", []):
            userinfo = re.search(r"://([^@/]*)@", str(var.get("value", "")))
            if userinfo:
                # Credentials in a URL only as $(VAR) expansions of Secret-backed variables.
                refs = set(re.findall(r"\$\((\w+)\)", userinfo.group(1)))
                literal = re.sub(r"\$\(\w+\)", "", userinfo.group(1)).strip(":")
                assert not literal, f"{ident}: literal credentials in {var['name']}"
                assert refs <= secret_vars, f"{ident}: {var['name']} uses {refs - secret_vars}"
    for cm in of_kind(objects, "ConfigMap"):
        for key in cm.get("data", {}):
            assert not SECRETISH.search(key), f"ConfigMap {cm['metadata']['name']} holds {key}"


def test_url_expansions_refer_to_variables_defined_before(objects: list[dict[str, Any]]) -> None:
    """Kubernetes only expands $(VAR) when VAR is defined earlier in the list."""
    for ident, c, _ in containers(objects):
        seen: set[str] = set()
        for var in c.get("env", []):
            for ref in re.findall(r"\$\((\w+)\)", str(var.get("value", ""))):
                assert ref in seen, f"{ident}: {var['name']} uses $({ref}) before it is defined"
            seen.add(var["name"])


def test_referenced_config_maps_exist(objects: list[dict[str, Any]]) -> None:
    names = {cm["metadata"]["name"] for cm in of_kind(objects, "ConfigMap")}
    for ident, c, spec in containers(objects):
        refs = [s["configMapRef"]["name"] for s in c.get("envFrom", []) if "configMapRef" in s]
        refs += [
            e["valueFrom"]["configMapKeyRef"]["name"]
            for e in c.get("env", [])
            if "configMapKeyRef" in e.get("valueFrom", {})
        ]
        refs += [v["configMap"]["name"] for v in spec.get("volumes", []) if "configMap" in v]
        assert set(refs) <= names, f"{ident}: missing {set(refs) - names}"
    for replication in of_kind(objects, "RedisReplication"):
        assert replication["spec"]["redisConfig"]["additionalRedisConfig"] in names


def test_services_get_the_settings_they_need(objects: list[dict[str, Any]]) -> None:
    for name, port in HTTP_SERVICES.items():
        env = env_map(main_container(objects, name))
        assert env["CONVEYOR_PORT"]["value"] == str(port)
        assert "CONVEYOR_REDIS_URL" in env
    for name in ("api-gateway", "job-service", "result-service"):
        assert "CONVEYOR_INTERNAL_TOKEN" in env_map(main_container(objects, name))
    assert "CONVEYOR_INTERNAL_TOKEN" not in env_map(main_container(objects, "worker"))
    db_users = {
        ident.split("/")[1]: sorted(set(env_map(c)) & DATABASE_URLS)
        for ident, c, _ in containers(objects)
        if set(env_map(c)) & DATABASE_URLS
    }
    # job-service serves as the least-privilege role; only the migration connects as the owner.
    assert db_users == {
        "job-service": ["CONVEYOR_DATABASE_URL"],
        "conveyor-migrate": ["CONVEYOR_DATABASE_MIGRATION_URL"],
    }
    assert config_value(objects, "CONVEYOR_ENVIRONMENT") == "production"
    assert config_value(objects, "CONVEYOR_HOST") == "0.0.0.0"


def test_clients_point_at_the_operator_managed_servers(objects: list[dict[str, Any]]) -> None:
    (cluster,) = of_kind(objects, "Cluster")
    (replication,) = of_kind(objects, "RedisReplication")
    (sentinel,) = of_kind(objects, "RedisSentinel")
    cluster_name = cluster["metadata"]["name"]
    redis_name = replication["metadata"]["name"]
    assert sentinel["spec"]["redisSentinelConfig"]["redisReplicationName"] == redis_name
    database = cluster["spec"]["bootstrap"]["initdb"]["database"]
    roles = {role["name"]: role for role in cluster["spec"]["managed"]["roles"]}
    (migrate,) = [c for ident, c, _ in containers(objects) if ident.startswith("Job/")]
    app_role = roles[env_map(migrate)["CONVEYOR_DATABASE_APP_ROLE"]["value"]]
    assert app_role["login"] is True
    assert not any(app_role.get(flag) for flag in ("superuser", "createdb", "createrole"))
    # The migration connects as the owner (CloudNativePG's generated secret), job-service as
    # the role the migration grants to (its own Secret).
    expected_secret = {
        "CONVEYOR_DATABASE_MIGRATION_URL": f"{cluster_name}-app",
        "CONVEYOR_DATABASE_URL": app_role["passwordSecret"]["name"],
    }
    for ident, c, _ in containers(objects):
        env = env_map(c)
        for name in DATABASE_URLS & set(env):
            url = env[name]["value"]
            assert url.startswith("postgresql+asyncpg://"), ident
            assert f"@{cluster_name}-rw:5432/{database}" in url, ident
            for part in ("DB_USER", "DB_PASSWORD"):
                secret = env[part]["valueFrom"]["secretKeyRef"]["name"]
                assert secret == expected_secret[name], (ident, part)
        if "CONVEYOR_REDIS_URL" in env:
            assert f"@{redis_name}-master:6379/" in env["CONVEYOR_REDIS_URL"]["value"], ident


def test_redis_never_evicts(objects: list[dict[str, Any]]) -> None:
    (config,) = of_kind(objects, "ConfigMap", "conveyor-redis-config")
    assert "maxmemory-policy noeviction" in config["data"]["redis-additional.conf"]


# --- autoscaling, disruption budgets, exposure, monitoring ------------------------------------


def test_http_services_have_horizontal_pod_autoscalers(objects: list[dict[str, Any]]) -> None:
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(objects, "HorizontalPodAutoscaler")
    }
    assert set(hpas) == set(HTTP_SERVICES)
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"], name
        assert hpa["spec"]["metrics"], name


def test_workers_scale_on_backlog_with_keda(objects: list[dict[str, Any]]) -> None:
    (scaled,) = of_kind(objects, "ScaledObject")
    namespace = scaled["metadata"]["namespace"]
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "worker"
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    triggers = {t["type"]: t for t in spec["triggers"]}
    assert set(triggers) == {"redis", "prometheus"}

    redis = triggers["redis"]["metadata"]
    keys = RedisKeys(config_value(objects, "CONVEYOR_REDIS_NAMESPACE"))
    assert redis["listName"] == keys.queue(queue_key("default", kombu_priority(0)))
    # KEDA runs in its own namespace: the address must name this one.
    assert redis["address"] == f"conveyor-redis-master.{namespace}.svc.cluster.local:6379"
    auth_name = triggers["redis"]["authenticationRef"]["name"]
    (auth,) = of_kind(objects, "TriggerAuthentication", auth_name)
    assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"password"}

    query = triggers["prometheus"]["metadata"]["query"]
    assert "conveyor_jobs_backlog" in query
    assert f'namespace="{namespace}"' in query
    assert float(triggers["prometheus"]["metadata"]["threshold"]) > 0


def test_pod_disruption_budgets_cover_the_services(objects: list[dict[str, Any]]) -> None:
    pdbs = of_kind(objects, "PodDisruptionBudget")
    for name in APP_DEPLOYMENTS:
        labels = deployment(objects, name)["spec"]["template"]["metadata"]["labels"]
        matching = [p for p in pdbs if selector_matches(p["spec"]["selector"], labels)]
        assert len(matching) == 1, name
        spec = matching[0]["spec"]
        # maxUnavailable, so a one-replica dev deployment never blocks a node drain.
        assert spec.get("maxUnavailable") == 1, name


def test_services_select_existing_pods(objects: list[dict[str, Any]]) -> None:
    pod_labels = [
        o["spec"]["template"]["metadata"]["labels"] for o in objects if o["kind"] in WORKLOAD_KINDS
    ]
    for svc in of_kind(objects, "Service"):
        assert svc["spec"].get("type", "ClusterIP") == "ClusterIP", svc["metadata"]["name"]
        assert any(
            selector_matches({"matchLabels": svc["spec"]["selector"]}, labels)
            for labels in pod_labels
        )


def test_only_the_gateway_has_an_ingress(objects: list[dict[str, Any]]) -> None:
    (ingress,) = of_kind(objects, "Ingress")
    backends = {
        path["backend"]["service"]["name"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {"api-gateway"}
    assert ingress["spec"]["tls"]


def test_service_monitor_scrapes_every_service(objects: list[dict[str, Any]]) -> None:
    (monitor,) = of_kind(objects, "ServiceMonitor")
    endpoint_ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    scraped = set()
    for svc in of_kind(objects, "Service"):
        if selector_matches(monitor["spec"]["selector"], svc["metadata"].get("labels", {})):
            ports = {p["name"] for p in svc["spec"]["ports"]}
            assert ports & endpoint_ports, svc["metadata"]["name"]
            scraped.add(svc["metadata"]["name"])
    assert scraped == APP_DEPLOYMENTS
    # Keep the app's own `service` label instead of Prometheus' target label of the same name.
    assert all(e.get("honorLabels") for e in monitor["spec"]["endpoints"])


def test_prometheus_rules_and_dashboard_ship_with_the_manifests(
    objects: list[dict[str, Any]],
) -> None:
    (rule,) = of_kind(objects, "PrometheusRule")
    assert any(r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"])
    (dashboard,) = of_kind(objects, "ConfigMap", "conveyor-grafana-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert "conveyor.json" in dashboard["data"]


def test_flower_runs_beside_the_workers(objects: list[dict[str, Any]]) -> None:
    c = main_container(objects, "flower")
    assert c["command"][0] == "celery"
    assert "flower" in c["command"]
    module = next(a.split("=", 1)[1] for a in c["command"] if a.startswith("--config="))
    volumes = deployment(objects, "flower")["spec"]["template"]["spec"]["volumes"]
    (config_volume,) = [v for v in volumes if "configMap" in v]
    (config,) = of_kind(objects, "ConfigMap", config_volume["configMap"]["name"])
    assert f"{module}.py" in config["data"]
    assert "FLOWER_BASIC_AUTH" in env_map(c)


# --- migration and data stores -----------------------------------------------------------------


def test_migration_job_runs_before_the_rollout(objects: list[dict[str, Any]]) -> None:
    (job,) = of_kind(objects, "Job", "conveyor-migrate")
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "migration"
    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (c,) = pod["containers"]
    assert c["args"] == ["python", "-m", "job_service", "migrate"]
    assert "command" not in c
    assert c["image"] == main_container(objects, "job-service")["image"]
    assert job["spec"]["backoffLimit"] >= 1


def test_postgres_and_redis_come_from_operators(objects: list[dict[str, Any]]) -> None:
    assert not of_kind(objects, "StatefulSet")
    (cluster,) = of_kind(objects, "Cluster")
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    (sentinel,) = of_kind(objects, "RedisSentinel")
    assert int(sentinel["spec"]["redisSentinelConfig"]["quorum"]) <= sentinel["spec"]["clusterSize"]


def test_prod_is_replicated_pinned_and_backed_up() -> None:
    objs = render_overlay("prod")
    (cluster,) = of_kind(objs, "Cluster")
    assert cluster["spec"]["instances"] >= 3
    assert of_kind(objs, "RedisReplication")[0]["spec"]["clusterSize"] >= 3
    assert of_kind(objs, "RedisSentinel")[0]["spec"]["clusterSize"] >= 3
    for ident, c, _ in containers(objs):
        image = c["image"]
        assert ":" in image.rsplit("/", 1)[-1], f"{ident}: untagged {image}"
        assert not image.endswith(":latest"), f"{ident}: {image}"
    (store,) = of_kind(objs, "ObjectStore")
    (plugin,) = cluster["spec"]["plugins"]
    assert plugin["parameters"]["barmanObjectName"] == store["metadata"]["name"]
    assert plugin["isWALArchiver"] is True
    (backup,) = of_kind(objs, "ScheduledBackup")
    assert backup["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    assert backup["spec"]["pluginConfiguration"]["name"] == plugin["name"]
    for hpa in of_kind(objs, "HorizontalPodAutoscaler"):
        assert hpa["spec"]["minReplicas"] >= 2


def test_deploy_script_selects_what_it_applies_first() -> None:
    """deploy.sh applies phases by label; each phase's objects must carry those labels."""
    objs = render_overlay("prod")
    components = {o["metadata"].get("labels", {}).get("app.kubernetes.io/component") for o in objs}
    assert {
        "namespace",
        "config",
        "network-policy",
        "database",
        "broker",
        "migration",
    } <= components
    config = next(o for o in objs if o["metadata"]["name"].startswith("conveyor-config"))
    assert config["metadata"]["labels"]["app.kubernetes.io/component"] == "config"
    (cluster,) = of_kind(objs, "Cluster")
    assert cluster["metadata"]["labels"]["app.kubernetes.io/component"] == "database"
