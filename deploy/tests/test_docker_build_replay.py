"""The Dockerfiles' build steps replayed without Docker: the builder stage's COPYs (through
.dockerignore) into a scratch directory and its `uv sync` commands, exactly as written. This
proves the dependency layer installs from uv.lock and the manifests alone, and that the venv the
runtime image copies holds the service (not a link to sources it will not have) and no dev
dependencies."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_support import REPO
from dockerfile_support import (
    SERVICES,
    DockerIgnore,
    copy_args,
    dockerfile,
    env_pairs,
    parse_stages,
)


@pytest.fixture(scope="module")
def dockerignore() -> DockerIgnore:
    return DockerIgnore((REPO / ".dockerignore").read_text())


# --- the build steps, replayed ----------------------------------------------------------------


def build_context(target: Path, dockerignore: DockerIgnore) -> None:
    for root, dirs, files in os.walk(REPO):
        rel_root = Path(root).relative_to(REPO)
        dirs[:] = [
            d
            for d in dirs
            if d not in {".git", ".venv", "node_modules", "__pycache__", ".mypy_cache"}
        ]
        for name in files:
            rel = (rel_root / name).as_posix()
            if not dockerignore.excluded(rel):
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / rel, target / rel)


def replay_builder(
    service: str, tmp_path: Path, dockerignore: DockerIgnore
) -> tuple[Path, list[str]]:
    """Runs the manifests and builder stages' COPY and RUN steps in tmp_path (image paths under
    tmp_path/image); apt-get steps are skipped (they only fetch tini). Returns the venv and the
    commands run."""
    context = tmp_path / "context"
    build_context(context, dockerignore)
    image = tmp_path / "image"
    roots: dict[str, Path] = {}
    ran: list[str] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
    for stage in parse_stages(dockerfile(service)):
        if stage.name not in {"manifests", "builder"}:
            continue
        root = image / stage.name
        roots[stage.name] = root
        workdir = root
        stage_env = dict(env)
        for ins in stage.instructions:
            kind, value = ins["instruction"], ins["value"]
            if kind == "WORKDIR":
                workdir = root / value.lstrip("/")
                workdir.mkdir(parents=True, exist_ok=True)
            elif kind == "ENV":
                for key, val in env_pairs(value).items():
                    stage_env[key] = str(root / val.lstrip("/")) if val.startswith("/") else val
            elif kind == "COPY":
                flags, sources, dest = copy_args(value)
                if flags.get("from") == "uv":
                    continue  # uv itself: the test's own uv is used
                base = roots[flags["from"]] if "from" in flags else context
                target = root / dest.lstrip("/") if dest.startswith("/") else workdir / dest
                into_dir = dest.endswith("/") or dest in {".", "./"} or len(sources) > 1
                for source in sources:
                    src = base / source.lstrip("/")
                    if src.is_dir():  # COPY copies a directory's contents
                        shutil.copytree(src, target, dirs_exist_ok=True)
                    elif into_dir:
                        target.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(src, target / src.name)
                    else:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(src, target)
            elif kind == "RUN":
                command = re.sub(r"--mount=\S+\s*", "", value).strip()
                if command.startswith("apt-get"):
                    continue
                # The image compiles bytecode and copies files; the test need not (same result).
                stage_env["UV_COMPILE_BYTECODE"] = "0"
                stage_env["UV_LINK_MODE"] = "hardlink"
                result = subprocess.run(
                    ["bash", "-c", command],
                    cwd=workdir,
                    env=stage_env,
                    capture_output=True,
                    text=True,
                    timeout=240,
                    check=False,
                )
                assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
                ran.append(command)
    return roots["builder"] / "app" / ".venv", ran


@pytest.mark.parametrize("service", SERVICES)
def test_build_steps_produce_a_self_contained_venv(
    service: str, tmp_path: Path, dockerignore: DockerIgnore
) -> None:
    module, _, _ = SERVICES[service]
    if shutil.which("uv") is None:
        pytest.fail("uv is not on PATH", pytrace=False)
    venv, ran = replay_builder(service, tmp_path, dockerignore)
    assert len([c for c in ran if c.startswith("uv sync")]) == 2
    python = venv / "bin" / "python"
    probe = (
        "import importlib, importlib.util, json, sys;"
        f"m = importlib.import_module({module!r});"
        f"print(json.dumps([m.__file__, importlib.util.find_spec({module!r} + '.__main__') is not None,"
        " importlib.util.find_spec('pytest') is not None]))"
    )
    result = subprocess.run(
        [str(python), "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": os.environ["PATH"]},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    location, has_main, has_pytest = json.loads(result.stdout)
    # Installed into the venv, not linked back to the sources the runtime image will not have.
    assert Path(location).is_relative_to(venv), location
    assert has_main, f"python -m {module} has no __main__"
    assert not has_pytest, "dev dependencies leaked into the image"
    assert not list(venv.glob("lib/python*/site-packages/*.pth")) or all(
        "/image/builder/src" not in p.read_text()
        for p in venv.glob("lib/python*/site-packages/*.pth")
    )
