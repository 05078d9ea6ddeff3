#!/usr/bin/env bash
# The README's main-job command: build gitops-canary and run it on the bundled example
# GitOps repository. Needs only a Rust toolchain; touches nothing outside a scratch copy.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release --bin gitops-canary
bin=target/release/gitops-canary
echo "== gitops-canary plan --repo examples/gitops-repo"
"$bin" plan --repo examples/gitops-repo
echo
echo "== gitops-canary set-weight --repo examples/gitops-repo --ingress shop/web-canary --weight 25 --dry-run"
"$bin" set-weight --repo examples/gitops-repo --ingress shop/web-canary --weight 25 --dry-run
