#!/usr/bin/env bash
# techctl deploy without Docker: each service's image size (compressed and
# uncompressed), the digests of two consecutive builds of the same source,
# and the time of an incremental deploy after a one-line change (release
# build + image + push to a local registry + rollout), against moto and
# Debian's docker-registry. Works in a scratch clone of the repository so
# the change never touches this checkout.
#
#   bash bench/deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
command -v docker-registry >/dev/null || { echo "needs docker-registry: apt-get install docker-registry" >&2; exit 1; }
. scripts/moto.sh
start_aws

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/registry"
cat >"$work/registry.yml" <<YML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$port}
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
trap 'kill $AWS_PIDS $registry_pid 2>/dev/null || true; rm -rf "$work"' EXIT
until curl -fs "http://127.0.0.1:$port/v2/" >/dev/null; do sleep 0.1; done
registry="http://127.0.0.1:$port"

git clone --quiet "$repo" "$work/src"
cd "$work/src"
echo "==> building techctl" >&2
cargo build --quiet --bin techctl
techctl="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/techctl"
"$techctl" up --yes --no-deploy >/dev/null
# The values only operators have, set as they set them.
for pair in mercadopago_access_token=APP_USR-bench mercadopago_webhook_secret=bench \
            mercadopago_collector_id=1 mercadopago_pos_id=CAIXA01; do
  printf '%s\n' "${pair#*=}" | "$techctl" secrets set payment "${pair%%=*}" >/dev/null
done
printf 'bench-admin-password\n' | "$techctl" secrets set user admin_password >/dev/null

echo "==> first deploy of every service (builds the scratch clone)" >&2
"$techctl" deploy --all --registry "$registry" >"$work/first.out"
echo "image sizes:"
awk '/^==> /{service=$2} /  image sha256:/{gsub(/[(),]/,""); printf "  %-11s %s compressed, %s uncompressed\n", service, $3" "$4, $6" "$7}' "$work/first.out"

echo "two consecutive builds of the same source:"
for n in 1 2; do
  "$techctl" deploy product --registry "$registry" --dry-run | awk -v n=$n '/  image sha256:/{print "  build " n ": " $2}'
done

echo "incremental deploy after a one-line change (product service):"
sed -i 's/"product service"/"product service (changed)"/' services/product/src/lib.rs
grep -q 'product service (changed)' services/product/src/lib.rs || { echo "the one-line change did not apply" >&2; exit 1; }
start=$(date +%s.%N)
"$techctl" deploy product --registry "$registry" --no-wait >"$work/second.out"
end=$(date +%s.%N)
python3 -c "print(f'  build + image + push + new revision + service update: {$end - $start:.1f} s')"
grep -E "pushed|registered" "$work/second.out" | sed 's/^/ /'
