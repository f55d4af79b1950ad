#!/usr/bin/env bash
# Installs everything relic-suite needs on a fresh Debian machine with Python 3.11 (run as root):
# the Debian libraries Open3D links (libusb-1.0-0, libgomp1), Chromium for the report test,
# a virtualenv at .venv, and this project with its pinned dependencies (pyproject.toml).
# Idempotent: re-running skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
need_apt=()
for pkg in libusb-1.0-0 libgomp1 ${RELIC_EXTRA_APT:-chromium}; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if ! "$PY" -c "import venv, ensurepip" >/dev/null 2>&1; then need_apt+=(python3-venv); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "[bootstrap] apt-get install ${need_apt[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
  echo "[bootstrap] creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.relic-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[bootstrap] installing pinned dependencies (pyproject.toml)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[test]"
  touch "$stamp"
fi
echo "[bootstrap] ready: $(.venv/bin/python --version), relic at .venv/bin/relic"
