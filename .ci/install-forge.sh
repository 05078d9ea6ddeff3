#!/usr/bin/env bash
# Installs what the forge tests need: Node.js (Debian) and, in .ci/node/, GitHub's OpenAPI
# description (@octokit/openapi) and Prism (@stoplight/prism-cli) at the versions in its lock file.
set -euo pipefail
cd "$(dirname "$0")/node"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  marker=/tmp/.gitops-canary-apt-updated
  if [ ! -e "$marker" ]; then
    apt-get update -qq >/dev/null
    touch "$marker"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
spec=node_modules/@octokit/openapi/generated/api.github.com.json
prism=node_modules/.bin/prism
if [ ! -e "$spec" ] || [ ! -e "$prism" ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --silent >/dev/null
fi
