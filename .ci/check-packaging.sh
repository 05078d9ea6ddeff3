#!/usr/bin/env bash
# Packaging checks: lint the GitHub Action, the example workflows, the GitLab template and
# the Dockerfile; build the static release binary; put it in a FROM-scratch image with
# buildah (no base image can be pulled here, so Dockerfile.local mirrors the runtime stage
# around the local binary); run the image once; fail if it is larger than 20 MB.
set -euo pipefail
cd "$(dirname "$0")/.."

max_image_bytes=${MAX_IMAGE_BYTES:-$((20 * 1000 * 1000))}
github_workflows=(workflows/github-reconcile.yml workflows/github-run.yml workflows/release.yml)

echo "-- actionlint"
actionlint "${github_workflows[@]}"

echo "-- zizmor (offline)"
zizmor --offline --no-progress --config .ci/zizmor.yml "${github_workflows[@]}" action.yml

echo "-- check-jsonschema"
check-jsonschema --builtin-schema vendor.github-workflows "${github_workflows[@]}"
check-jsonschema --builtin-schema vendor.github-actions action.yml
check-jsonschema --builtin-schema vendor.gitlab-ci workflows/gitlab-ci.yml

echo "-- hadolint"
hadolint Dockerfile Dockerfile.local

# Dockerfile.local stands in for the runtime stage: they must run the same way.
stage_lines() { awk -v stage="$2" '
  /^FROM / { inside = ($0 ~ (" AS " stage "$")) }
  inside && /^(USER|ENTRYPOINT) / { print }' "$1"; }
if [ "$(stage_lines Dockerfile runtime)" != "$(stage_lines Dockerfile.local runtime)" ]; then
  echo "Dockerfile.local and the runtime stage of Dockerfile differ in USER/ENTRYPOINT" >&2
  exit 1
fi

echo "-- static release build (target/static)"
export CARGO_TARGET_DIR=target/static
RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build --quiet --release --locked --target x86_64-unknown-linux-gnu --bin gitops-canary
bin=target/static/x86_64-unknown-linux-gnu/release/gitops-canary
# A static(-pie) binary has no program interpreter and needs no shared library.
if readelf -l -d "$bin" | grep -E 'INTERP|\(NEEDED\)' >&2; then
  echo "$bin is dynamically linked" >&2
  exit 1
fi
echo "binary: $(stat -c %s "$bin") bytes, static"

echo "-- image (buildah, FROM scratch)"
# vfs storage and chroot isolation are what work in this sandbox (no overlay, no
# namespaces); buildah 1.28 ignores STORAGE_DRIVER, so every call names the driver.
bh() { buildah --storage-driver vfs "$@"; }
ctx=$(mktemp -d)
image=localhost/gitops-canary-check:$$
ctr=""
cleanup() {
  if [ -n "$ctr" ]; then bh umount "$ctr" >/dev/null 2>&1 || true; bh rm "$ctr" >/dev/null 2>&1 || true; fi
  bh rmi "$image" >/dev/null 2>&1 || true
  rm -rf "$ctx"
}
trap cleanup EXIT
# The layout of /rootfs in the Dockerfile's builder stage.
install -D -m 0755 "$bin" "$ctx/rootfs/gitops-canary"
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
install -d -m 1777 "$ctx/rootfs/tmp"
bh bud --quiet --isolation chroot -f Dockerfile.local -t "$image" "$ctx" >/dev/null

ctr=$(bh from "$image")
version=$(bh run --isolation chroot "$ctr" -- /gitops-canary --version)
echo "image runs: $version"
case "$version" in
  gitops-canary\ *) ;;
  *) echo "unexpected --version output: $version" >&2; exit 1 ;;
esac
user=$(bh inspect --type image --format '{{.OCIv1.Config.User}}' "$image")
[ "$user" = "65532:65532" ] || { echo "image user is '$user', want 65532:65532" >&2; exit 1; }

root=$(bh mount "$ctr")
# The binary keeps its private git workspace in the temp dir: the non-root user must be able
# to create it there.
tmp_mode=$(stat -c '%a %u:%g' "$root/tmp")
[ "$tmp_mode" = "1777 0:0" ] || { echo "image /tmp is '$tmp_mode', want '1777 0:0'" >&2; exit 1; }
size=$(du -sb --apparent-size "$root" | cut -f1)
gz=$(tar -C "$root" -cf - . | gzip -9 | wc -c)
echo "image size: $size bytes uncompressed, $gz bytes as a gzip layer (limit $max_image_bytes)"
if [ "$size" -gt "$max_image_bytes" ]; then
  echo "image is larger than $max_image_bytes bytes" >&2
  exit 1
fi
