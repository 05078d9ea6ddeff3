#!/usr/bin/env bash
# Holds the fake GitHub to GitHub's OpenAPI description and sends the adapter's requests to
# Prism; here a missing spec or Prism is a failure, not a SKIP.
set -euo pipefail
cd "$(dirname "$0")/.."
GITOPS_CANARY_REQUIRE_FORGE_SPEC=1 cargo test --quiet --test it forge_spec::
