#!/usr/bin/env bash
# The git tests serve bare repositories through `git http-backend` and seed them with the git CLI.
set -euo pipefail
if git --version >/dev/null 2>&1 && [ -x "$(git --exec-path)/git-http-backend" ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
marker=/tmp/.gitops-canary-apt-updated
if [ ! -e "$marker" ]; then
  $SUDO apt-get update -qq
  touch "$marker"
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends git ca-certificates >/dev/null
