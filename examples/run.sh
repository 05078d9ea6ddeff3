#!/usr/bin/env bash
# The README's main-job command: build gitops-canary and run a complete rollout of the
# bundled example repository on this machine, with no account, token or cluster:
#   - examples/gitops-repo is copied into a scratch Git repository (a bare "origin" and a
#     checkout of it, as CI would have), under a temporary directory;
#   - `plan` shows the canaries; `set-weight --dry-run` shows a single edit;
#   - `run --forge none --cluster none` drives shop/web-canary 10 -> 25 -> 50 -> 100 and
#     promotes it, each stage a direct commit (the pipeline is the approval), cluster gates
#     explicitly off. Then the same again with --output json.
# Needs only a Rust toolchain and git.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release --bin gitops-canary
bin=$PWD/target/release/gitops-canary
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

seed() { # seed DIR: a bare origin with the example, and a checkout of it in DIR/work
  cp -r examples/gitops-repo "$1/src"
  git -C "$1/src" init -q -b main
  git -C "$1/src" add -A
  git -C "$1/src" -c user.name=example -c user.email=example@example.com commit -qm "example GitOps repository"
  git clone -q --bare "$1/src" "$1/origin.git"
  git clone -q "$1/origin.git" "$1/work"
  git -C "$1/work" config user.name "gitops-canary demo"
  git -C "$1/work" config user.email "demo@example.com"
}

mkdir -p "$scratch/a" "$scratch/b"
seed "$scratch/a"
echo "== gitops-canary plan"
"$bin" plan --repo "$scratch/a/work"
echo
echo "== gitops-canary set-weight --ingress shop/web-canary --weight 25 --dry-run"
"$bin" set-weight --repo "$scratch/a/work" --ingress shop/web-canary --weight 25 --dry-run
echo
echo "== gitops-canary run --forge none --cluster none   (config: examples/gitops-repo/.gitops-canary.yaml)"
"$bin" run --repo "$scratch/a/work" --forge none --cluster none
echo
echo "== the commits it made on origin/main"
git -C "$scratch/a/origin.git" log --format='%h %s' main
echo
seed "$scratch/b"
echo "== the same rollout with --output json"
"$bin" run --repo "$scratch/b/work" --forge none --cluster none --output json
