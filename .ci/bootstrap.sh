#!/usr/bin/env bash
# Installs everything relic-suite needs on a fresh Debian machine with Python 3.11 (run as root):
# the Debian libraries Open3D links (libusb-1.0-0, libgomp1), Chromium for the report test,
# a virtualenv at .venv, and this project with its pinned dependencies (pyproject.toml; extras test and
# colmap, so the COLMAP estimator is tested too).
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
  # torch + torchvision take ~5.6 GB in the venv and pip unpacks wheels in a temp dir first.
  free_kb=$(df -Pk . | awk 'NR==2 {print $4}')
  if [ "${free_kb:-0}" -lt $((9 * 1024 * 1024)) ]; then
    echo "[bootstrap] ERROR: only $((free_kb / 1024)) MiB free on $(df -P . | awk 'NR==2 {print $6}');" \
         "installing needs about 9 GiB (torch, torchvision, open3d). Free disk space and re-run." >&2
    exit 1
  fi
  .venv/bin/pip install -q --no-cache-dir --upgrade pip
  .venv/bin/pip install -q --no-cache-dir -e ".[test,colmap]"
  touch "$stamp"
fi
echo "[bootstrap] ready: $(.venv/bin/python --version), relic at .venv/bin/relic"
