#!/usr/bin/env bash
# The engine end to end on this machine, with no AWS account: start a moto
# server (an AWS emulator), then plan, up, status, plan again (no changes),
# and down. Every command is the real techctl, pointed at moto through the
# standard AWS_ENDPOINT_URL.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/moto_server ]; then
  echo "==> installing the moto server into .venv" >&2
  python3 -m venv .venv
  .venv/bin/pip install --quiet 'moto[server]'
fi

echo "==> building techctl" >&2
cargo build --quiet --release -p techctl
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
techctl="$target_dir/release/techctl"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
MOTO_IAM_LOAD_MANAGED_POLICIES=true .venv/bin/moto_server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
  sleep 0.1
done

export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
unset AWS_PROFILE

step() { printf '\n\033[1m==> techctl %s\033[0m\n' "$*"; "$techctl" "$@"; }
step plan
step up --yes
step status
step plan --detailed-exitcode
step down --yes
echo
echo "Done: the stack was created, checked and deleted against moto on port $port."
