#!/usr/bin/env bash
# The Git tags a release of VERSION (1.2.0, 1.3.0-rc.1; no leading v) creates or moves, one a
# line: always vX.Y.Z; the major tag vX (what `uses: gitops-canary/gitops-canary@vX` follows)
# only for a final release, so a prerelease such as 1.2.0-rc.1 never moves v1. Used by
# .github/workflows/release.yml for both the Git tags and the image tags; checked by
# .ci/check-packaging.sh.
set -euo pipefail
version=${1:?usage: release-tags.sh VERSION}
final='^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$'
pre='^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*$'
if [[ $version =~ $final ]]; then
  echo "v$version"
  echo "v${BASH_REMATCH[1]}"
elif [[ $version =~ $pre ]]; then
  echo "v$version"
else
  echo "release-tags.sh: '$version' is not a version (X.Y.Z or X.Y.Z-PRERELEASE, no leading v)" >&2
  exit 2
fi
