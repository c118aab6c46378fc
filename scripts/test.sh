#!/usr/bin/env bash
# Runs every test of the workspace. The tests start their own moto server
# from .venv (made here on first use); nothing else needs to be running.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/moto.sh
ensure_moto

cargo test --workspace --all-targets "$@"
