# Sourced by the scripts that need the AWS emulator: installs it into .venv
# on first use and starts it on a free loopback port.

# Installs the moto server (AWS emulator) and schemathesis (the services'
# contract test) into .venv unless they are there.
ensure_moto() {
  if [ ! -x .venv/bin/moto_server ] || [ ! -x .venv/bin/schemathesis ]; then
    echo "==> installing the moto server and schemathesis into .venv" >&2
    python3 -m venv .venv
    .venv/bin/pip install --quiet 'moto[server]' schemathesis
  fi
}

# Starts moto, waits until it listens, stops it when the script exits, and
# points the AWS configuration chain at it.
start_moto() {
  ensure_moto
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # moto runs no tasks: its services report this many running, so a
  # rollout completes.
  MOTO_ECS_SERVICE_RUNNING=6 MOTO_IAM_LOAD_MANAGED_POLICIES=true .venv/bin/moto_server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  MOTO_PID=$!
  trap 'kill $MOTO_PID 2>/dev/null || true' EXIT
  for _ in $(seq 1 300); do
    (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
    sleep 0.1
  done
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
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
