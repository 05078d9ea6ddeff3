#!/usr/bin/env bash
# The manifest benchmark on the binary users run: build the release binary (opt-level "s", fat
# LTO, as in the image), then time `plan` and `set-weight` against `grep -rl` over the generated
# flat and Kustomize monorepos. benches/manifest.rs prints one line per command (median ms,
# ratio to grep, peak RSS, target, PASS/FAIL) and "all targets: PASS|FAIL".
# GITOPS_CANARY_BENCH_FILES sets the tree size (20000), GITOPS_CANARY_BENCH_RUNS the rounds (11).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin gitops-canary
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
export GITOPS_CANARY_BENCH_BIN="$target_dir/release/gitops-canary"
# The harness only spawns the contenders and waits, so its own build profile does not matter:
# it runs as the test-profile build `cargo test` already made, and --bench makes it judge.
exec cargo test --bench manifest -- --bench "$@"
