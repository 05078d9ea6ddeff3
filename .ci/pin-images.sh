#!/usr/bin/env bash
# Writes the digests of the images a release pushed into the files that name them, so the
# release commit runs exactly those bytes:
#   action.yml                            runs.image: docker://IMAGE@ACTION_DIGEST
#   templates/gitops-canary/template.yml  the `image` input's default: IMAGE@GITLAB_DIGEST
# Each file must hold exactly one line to rewrite, or nothing is written. Used by
# .github/workflows/release.yml; .ci/check-packaging.sh runs it on a copy.
set -euo pipefail
action_digest=${1:?usage: pin-images.sh ACTION_DIGEST GITLAB_DIGEST [DIR]}
gitlab_digest=${2:?usage: pin-images.sh ACTION_DIGEST GITLAB_DIGEST [DIR]}
dir=${3:-.}
image=ghcr.io/gitops-canary/gitops-canary
for d in "$action_digest" "$gitlab_digest"; do
  [[ $d =~ ^sha256:[0-9a-f]{64}$ ]] || { echo "pin-images.sh: '$d' is not a sha256 digest" >&2; exit 2; }
done

# rewrite FILE PATTERN REPLACEMENT: sed -E on the one line matching PATTERN.
rewrite() {
  local file=$1 pattern=$2 replacement=$3 count
  count=$(grep -cE "$pattern" "$file" || true)
  if [ "$count" != 1 ]; then
    echo "pin-images.sh: $file has $count lines matching /$pattern/, want 1" >&2
    exit 1
  fi
  sed -E -i "s|$pattern|$replacement|" "$file"
}
image_re=${image//./\\.}
rewrite "$dir/action.yml" \
  "^(  image: docker://)${image_re}[:@][^ ]*\$" "\\1${image}@${action_digest}"
rewrite "$dir/templates/gitops-canary/template.yml" \
  "^(      default: )${image_re}[:@][^ ]*\$" "\\1${image}@${gitlab_digest}"
grep -F "docker://${image}@${action_digest}" "$dir/action.yml"
grep -F "${image}@${gitlab_digest}" "$dir/templates/gitops-canary/template.yml"
