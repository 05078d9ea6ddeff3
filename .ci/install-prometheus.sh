#!/usr/bin/env bash
# Installs Prometheus and promtool (Debian package) for tests/it/metrics_prometheus.rs.
# The tests start their own Prometheus on a free loopback port with a temp storage dir; the
# system service the package may start is not used, so it is stopped and kept from starting.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
marker=/tmp/.gitops-canary-apt-updated
if [ ! -e "$marker" ]; then
  apt-get update -qq
  touch "$marker"
fi

# policy-rc.d exit 101 tells invoke-rc.d not to start services during the install; put back
# whatever was there before.
policy=/usr/sbin/policy-rc.d
backup=""
if [ -e "$policy" ]; then
  backup=$(mktemp)
  cp -p "$policy" "$backup"
fi
restore_policy() {
  if [ -n "$backup" ]; then
    mv -f "$backup" "$policy"
  else
    rm -f "$policy"
  fi
}
trap restore_policy EXIT
printf '#!/bin/sh\nexit 101\n' >"$policy"
chmod +x "$policy"

apt-get install -y -qq --no-install-recommends prometheus >/dev/null

# If a service got started anyway (no policy-rc.d support, systemd present), stop it: it would
# hold port 9090 and write into /var/lib/prometheus for nothing.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  systemctl stop prometheus || true
fi
if command -v service >/dev/null 2>&1; then
  service prometheus stop >/dev/null 2>&1 || true
fi

command -v prometheus >/dev/null
command -v promtool >/dev/null
