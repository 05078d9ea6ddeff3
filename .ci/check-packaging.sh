#!/usr/bin/env bash
# Packaging checks: lint the GitHub Action, the project's workflows (.github/workflows/), the
# example workflows (workflows/), the GitLab component (templates/) and the Dockerfile; check
# the release's tag filter and image pinning; build the static release binary; put it in a FROM-scratch image with
# buildah (no base image can be pulled here, so Dockerfile.local mirrors the runtime stage
# around the local binary); run the image once; fail if it is larger than 20 MB.
set -euo pipefail
cd "$(dirname "$0")/.."

max_image_bytes=${MAX_IMAGE_BYTES:-$((20 * 1000 * 1000))}
# The project's own workflows and the examples users copy.
github_workflows=(.github/workflows/*.yml workflows/github-*.yml)
gitlab_component=templates/gitops-canary/template.yml

echo "-- actionlint"
actionlint "${github_workflows[@]}"

echo "-- zizmor --persona pedantic (offline)"
# No finding at all: a suppression needs a written reason, in .ci/zizmor.yml or inline.
zizmor --persona pedantic --offline --no-progress --config .ci/zizmor.yml \
  "${github_workflows[@]}" action.yml

echo "-- check-jsonschema"
check-jsonschema --builtin-schema vendor.github-workflows "${github_workflows[@]}"
check-jsonschema --builtin-schema vendor.github-actions action.yml
check-jsonschema --builtin-schema vendor.gitlab-ci workflows/gitlab-ci.yml

echo "-- GitLab component, included into host pipelines"
python3 .ci/check-gitlab-component.py

echo "-- release: tags and image pins"
# A prerelease never moves the major tag.
[ "$(bash .ci/release-tags.sh 1.2.0 | tr '\n' ' ')" = "v1.2.0 v1 " ]
[ "$(bash .ci/release-tags.sh 1.2.0-rc.1 | tr '\n' ' ')" = "v1.2.0-rc.1 " ]
if bash .ci/release-tags.sh v1.2.0 2>/dev/null; then echo "release-tags.sh took v1.2.0" >&2; exit 1; fi
# The release commit pins both images to digests, and then action.yml passes zizmor's
# pedantic persona without the unpinned-images exception of .ci/zizmor.yml.
pinned=$(mktemp -d)
mkdir -p "$pinned/templates/gitops-canary"
cp action.yml "$pinned/action.yml"
cp "$gitlab_component" "$pinned/$gitlab_component"
bash .ci/pin-images.sh "sha256:$(printf '%064d' 1)" "sha256:$(printf '%064d' 2)" "$pinned" >/dev/null
zizmor --persona pedantic --offline --no-progress --no-config "$pinned/action.yml"
check-jsonschema --builtin-schema vendor.github-actions "$pinned/action.yml"
rm -rf "$pinned"

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
