#!/usr/bin/env bash
# The Helm tests (tests/it/helm_values.rs) render charts with Helm's Go SDK through the PyPI
# package helm-python-sdk (libhelm_c behind ctypes; no helm binary). Nothing to do when it
# imports; else install it with pip, or say what to do.
set -euo pipefail
PY="${PYTHON:-python3}"
probe() { "$PY" -c 'import helm_python; helm_python.helm_sdk_version()' >/dev/null 2>&1; }
if probe; then
  exit 0
fi
if command -v "$PY" >/dev/null 2>&1; then
  "$PY" -m pip install --quiet --disable-pip-version-check 'helm-python-sdk>=0.2.2,<0.3' || true
fi
if ! probe; then
  echo "error: the Helm tests need the PyPI package helm-python-sdk (Helm's Go SDK for Python)." >&2
  echo "Install it with: $PY -m pip install 'helm-python-sdk>=0.2.2,<0.3'" >&2
  exit 1
fi
