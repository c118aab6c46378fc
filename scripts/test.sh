#!/usr/bin/env bash
# Runs every test of the workspace. The tests start their own moto server
# from .venv (made here on first use); nothing else needs to be running.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/moto_server ]; then
  echo "Installing the moto server (AWS emulator) into .venv ..." >&2
  python3 -m venv .venv
  .venv/bin/pip install --quiet 'moto[server]'
fi

cargo test --workspace --all-targets "$@"
