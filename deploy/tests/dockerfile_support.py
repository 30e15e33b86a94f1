"""Dockerfile helpers for deploy/tests: the services, a stage-aware parse (dockerfile-parse
underneath), and Docker's .dockerignore semantics."""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy_support import REPO
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

# service folder -> (import name, command, port)
SERVICES = {
    "api-gateway": ("api_gateway", ["python", "-m", "api_gateway"], 8000),
    "job-service": ("job_service", ["python", "-m", "job_service", "serve"], 8001),
    "result-service": ("result_service", ["python", "-m", "result_service"], 8002),
    "worker": ("conveyor_worker", ["python", "-m", "conveyor_worker"], 8003),
}
BUILD_TOOLS = re.compile(
    r"\b(apt-get|apt|apk|pip|pip3|uv|gcc|cc|make|build-essential|curl|wget|git)\b"
)
TINI = ["/usr/bin/tini", "--"]


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[dict[str, Any]] = field(default_factory=list)

    def of(self, instruction: str) -> list[str]:
        return [i["value"] for i in self.instructions if i["instruction"] == instruction]


def dockerfile(service: str) -> Path:
    return REPO / "services" / service / "Dockerfile"


def parse_stages(path: Path) -> list[Stage]:
    parser = DockerfileParser(str(path))
    stages: list[Stage] = []
    for ins in parser.structure:
        if ins["instruction"] == "FROM":
            base, _, name = ins["value"].partition(" AS ")
            stages.append(Stage(name.strip(), base.strip()))
        elif stages and ins["instruction"] != "COMMENT":
            stages[-1].instructions.append(ins)
    return stages


def build_args(path: Path) -> dict[str, str]:
    parser = DockerfileParser(str(path))
    args = {}
    for ins in parser.structure:
        if ins["instruction"] == "FROM":
            break
        if ins["instruction"] == "ARG":
            key, _, value = ins["value"].partition("=")
            args[key] = value
    return args


def exec_form(value: str) -> list[str]:
    """The JSON array of an exec-form instruction; fails for shell form."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = None
    assert isinstance(parsed, list), f"shell form: {value}"
    return [str(x) for x in parsed]


def copy_args(value: str) -> tuple[dict[str, str], list[str], str]:
    """(flags, sources, destination) of a COPY instruction."""
    words = shlex.split(value)
    flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
    paths = [w for w in words if not w.startswith("--")]
    return flags, paths[:-1], paths[-1]


def env_pairs(value: str) -> dict[str, str]:
    return dict(w.split("=", 1) for w in shlex.split(value))


def member_name(service: str) -> str:
    data = tomllib.loads((REPO / "services" / service / "pyproject.toml").read_text())
    return str(data["project"]["name"])


# --- .dockerignore (Docker's pattern semantics: last match wins; a path is excluded when it or
# one of its parent directories matches) --------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    pattern = os.path.normpath(pattern.strip().lstrip("/"))
    out = ""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 1
                if pattern[i + 1 : i + 2] == "/":
                    i += 1
                    out += "(.*/)?"
                else:
                    out += ".*"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end
        elif ch == "\\":
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(f"^{out}$")


class DockerIgnore:
    def __init__(self, text: str) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            self.rules.append((negate, _pattern_regex(line[1:] if negate else line)))

    def excluded(self, rel_path: str) -> bool:
        parts = rel_path.split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        excluded = False
        for negate, regex in self.rules:
            if any(regex.match(c) for c in candidates):
                excluded = not negate
        return excluded
