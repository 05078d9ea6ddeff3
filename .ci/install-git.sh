#!/usr/bin/env bash
# The git tests serve bare repositories through `git http-backend` (smart HTTP) and a throwaway
# `sshd` (Git over SSH), and seed them with the git CLI.
set -euo pipefail
need=()
if ! git --version >/dev/null 2>&1 || [ ! -x "$(git --exec-path)/git-http-backend" ]; then
  need+=(git)
fi
if [ ! -x /usr/sbin/sshd ]; then need+=(openssh-server); fi
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
if [ "${#need[@]}" -gt 0 ]; then
  marker=/tmp/.gitops-canary-apt-updated
  if [ ! -e "$marker" ]; then
    $SUDO apt-get update -qq
    touch "$marker"
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${need[@]}" ca-certificates >/dev/null
fi
# sshd started as root needs its privilege-separation directory.
$SUDO mkdir -p /run/sshd
