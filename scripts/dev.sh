#!/usr/bin/env bash
# Runs the whole ordering system on this machine: installs PostgreSQL's
# server binaries when they are missing, builds techctl and starts
# `techctl dev` (which builds the services in release mode and runs them
# with PostgreSQL, the gateway and the Mercado Pago sandbox). Ctrl-C stops
# it all. Arguments go to `techctl dev` (say --base-port 18000).
set -euo pipefail
cd "$(dirname "$0")/.."

# One build cache for every checkout of the project.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/techctl-target}"

command -v cargo >/dev/null || {
  echo "techctl is written in Rust: install it first (https://rustup.rs), then run this again" >&2
  exit 1
}
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && ! command -v initdb >/dev/null && [ -z "${PG_BIN:-}" ]; then
  echo "==> installing PostgreSQL's server binaries (apt-get install postgresql)" >&2
  sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends postgresql
fi

echo "==> building techctl" >&2
cargo build --quiet --bin techctl
# The banner shows commands as typed here: bash scripts/dev.sh pay ORDER_ID …
export TECHCTL_DEV_COMMAND="bash scripts/dev.sh"
exec "$CARGO_TARGET_DIR/debug/techctl" dev "$@"
