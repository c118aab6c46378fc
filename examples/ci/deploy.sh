#!/usr/bin/env bash
# The deploy job of examples/ci/github-actions.yml: converge the stack of
# the environment TECHCTL_ENV names, then build, push and roll out every
# service. The AWS credentials are the job's (the OIDC role); the tests run
# this same script against moto behind the strict proxy.
#
#   TECHCTL_ENV=staging bash examples/ci/deploy.sh
#
# TECHCTL: a techctl binary to use instead of building one.
# TECHCTL_DEPLOY_ARGS: more arguments for `techctl deploy` (the workflow
# passes --no-build: it built everything before it had AWS credentials).
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${TECHCTL_ENV:?set TECHCTL_ENV to the environment to deploy, such as staging}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/techctl-target}"

if [ -z "${TECHCTL:-}" ]; then
  cargo build --locked --release --bin techctl
  TECHCTL="$CARGO_TARGET_DIR/release/techctl"
fi

# Another run on the stack (a second push) is waited for, not failed.
"$TECHCTL" up --yes --no-deploy --lock-timeout 15m
# shellcheck disable=SC2086 # the extra arguments are words on purpose
"$TECHCTL" deploy --all --yes --lock-timeout 15m ${TECHCTL_DEPLOY_ARGS:-}
"$TECHCTL" verify
