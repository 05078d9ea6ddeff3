#!/usr/bin/env bash
# The Kustomize tests (tests/it/kustomize_cases.rs) use `kubectl kustomize` (Kustomize v5, built
# into kubectl >= 1.27) as their oracle. Nothing to do when it is there; else install Debian's
# kubernetes-client package (kubectl), or say what to do.
set -euo pipefail
if kubectl kustomize --help >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
if command -v apt-get >/dev/null 2>&1; then
  marker=/tmp/.gitops-canary-apt-updated
  if [ ! -e "$marker" ]; then
    $SUDO apt-get update -qq
    touch "$marker"
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    kubernetes-client >/dev/null || true
fi
if ! kubectl kustomize --help >/dev/null 2>&1; then
  echo "error: the Kustomize tests need \`kubectl kustomize\` (kubectl >= 1.27 with Kustomize v5)." >&2
  echo "Install kubectl (Debian: apt-get install kubernetes-client) and put it on PATH." >&2
  exit 1
fi
