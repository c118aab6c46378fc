#!/usr/bin/env bash
# The engine end to end on this machine, with no AWS account: start a moto
# server (an AWS emulator), then plan, up, status, plan again (no changes),
# and down. Every command is the real techctl, pointed through the standard
# AWS_ENDPOINT_URL at moto behind testkit's strict proxy, which refuses what
# AWS refuses and moto would let pass.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/moto.sh
build_techctl
start_aws

step() { printf '\n\033[1m==> techctl %s\033[0m\n' "$*"; "$TECHCTL" "$@"; }
step plan
step up --yes --no-deploy
step status
step plan --detailed-exitcode
step down --yes
echo
echo "Done: the stack was created, checked and deleted against moto behind the strict proxy at $AWS_ENDPOINT_URL."
