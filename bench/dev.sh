#!/usr/bin/env bash
# techctl dev: the time from `techctl dev` to the first answered request
# through the gateway (services already built, so cargo has nothing to do),
# in a fresh folder (initdb, migrations, seeding) and again with the data
# kept; then the memory of the whole running system after one order went
# through it (examples/order-flow.sh): resident (RSS) and proportional
# (PSS: shared pages split between the processes sharing them) per part.
#
#   bash bench/dev.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

echo "==> building techctl and the services (release)" >&2
cargo build --quiet --bin techctl
cargo build --quiet --release --bin user-service --bin product-service --bin order-service --bin payment-service --bin production-service
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
techctl="$target/debug/techctl"

work=$(mktemp -d)
chmod 755 "$work"
dev_pid=
cleanup() { [ -n "$dev_pid" ] && kill -INT "$dev_pid" 2>/dev/null && wait "$dev_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
base=$(python3 -c '
import random, socket
while True:
    b = random.randint(20000, 60000)
    try:
        for p in range(b, b + 8):
            s = socket.socket(); s.bind(("0.0.0.0", p)); s.close()
        print(b); break
    except OSError:
        pass')

now() { date +%s.%N; }
# start LABEL: starts techctl dev and prints the seconds to the first 200.
start() {
  local began answered
  began=$(now)
  (cd "$work" && exec "$techctl" --blueprint "$repo/blueprints/techchallenge.toml" dev --base-port "$base" --source "$repo" >"$work/dev-$1.out" 2>&1) &
  dev_pid=$!
  until curl -fs "http://127.0.0.1:$base/categories" >/dev/null 2>&1; do
    kill -0 "$dev_pid" 2>/dev/null || { cat "$work/dev-$1.out" >&2; exit 1; }
    sleep 0.02
  done
  answered=$(now)
  until grep -q "techctl dev is up" "$work/dev-$1.out"; do sleep 0.05; done
  python3 -c "print(f'  $1: first answered request after {$answered - $began:.2f} s')"
}
stop() { kill -INT "$dev_pid"; wait "$dev_pid"; dev_pid=; }

echo "time from techctl dev to the first answered request (warm build):"
start "fresh folder"
stop
start "data kept"
(cd "$work" && bash "$repo/examples/order-flow.sh" >/dev/null)

python3 - "$work" "$dev_pid" <<'PY'
import json, os, sys
work, techctl = sys.argv[1], int(sys.argv[2])
state = json.load(open(f"{work}/.techctl/dev.json"))
postmaster = int(open(f"{work}/.techctl/postgres/data/postmaster.pid").readline())

def parent(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])

def memory(pid):
    rss = pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"): rss = int(line.split()[1])
            if line.startswith("Pss:"): pss = int(line.split()[1])
    return rss, pss

parts = {"techctl (gateway, sandbox, supervisor)": [techctl]}
for name, service in sorted(state["services"].items()):
    parts[f"{name} service"] = [service["pid"]]
children = [int(p) for p in os.listdir("/proc") if p.isdigit() and parent(int(p)) == postmaster]
parts[f"PostgreSQL ({1 + len(children)} processes)"] = [postmaster] + children
print("memory of the running system:")
total_rss = total_pss = 0
for part, pids in parts.items():
    rss = sum(memory(p)[0] for p in pids); pss = sum(memory(p)[1] for p in pids)
    total_rss += rss; total_pss += pss
    print(f"  {part:<42} RSS {rss/1024:7.1f} MiB   PSS {pss/1024:7.1f} MiB")
print(f"  {'whole system':<42} RSS {total_rss/1024:7.1f} MiB   PSS {total_pss/1024:7.1f} MiB")
PY
