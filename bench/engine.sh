#!/usr/bin/env bash
# Wall time and AWS calls of the engine's commands against a local moto
# server: `up` from nothing, a no-op `up`, `plan`, and `down`. Prints the
# median of RUNS runs of each (default 5), from a release build (PROFILE=dev
# for a debug one), and the longest chain of dependent waits in the graph.
#
#   bash bench/engine.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}

. scripts/moto.sh
build_techctl
start_moto

results=$(mktemp)
# One timed command: prints "name seconds calls mutating".
measure() {
  local name=$1; shift
  local start end out
  start=$(date +%s.%N)
  out=$("$TECHCTL" --output json "$@")
  end=$(date +%s.%N)
  python3 - "$name" "$start" "$end" "$out" >>"$results" <<'PY'
import json, sys
name, start, end, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
calls = mutating = 0
for line in out.splitlines():
    doc = json.loads(line)
    if "total_aws_calls" in doc:
        calls, mutating = doc["total_aws_calls"], doc["total_mutating_calls"]
    elif "aws_calls" in doc:
        calls = doc["aws_calls"]
print(name, f"{end - start:.3f}", calls, mutating)
PY
}

# Warm moto's backends once so the first measured run is not an outlier.
"$TECHCTL" plan >/dev/null
for _ in $(seq 1 "$runs"); do
  measure "up-from-nothing" up --yes --no-deploy
  measure "no-op-up" up --yes --no-deploy
  measure "plan" plan
  measure "down" down --yes --force-delete-secrets
done

python3 - "$results" "$runs" "${PROFILE:-release}" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, secs, calls, mutating = line.split()
    rows.setdefault(name, []).append((float(secs), int(calls), int(mutating)))
print(f"techctl against moto, {sys.argv[3]} build, median of {sys.argv[2]} runs")
print(f"{'command':<18}{'wall time':>12}{'AWS calls':>12}{'changing':>10}")
for name in ["up-from-nothing", "no-op-up", "plan", "down"]:
    r = rows[name]
    print(f"{name:<18}{statistics.median(x[0] for x in r):>10.3f} s{int(statistics.median(x[1] for x in r)):>12}{int(statistics.median(x[2] for x in r)):>10}")
PY

"$TECHCTL" plan --output json >"$results.plan"
python3 - "$results.plan" <<'PY'
import json, sys
chain = json.loads(open(sys.argv[1]).readline())["longest_wait_chain"]
waits = " -> ".join(chain["waits"])
print(f"longest chain of dependent waits: {len(chain['waits'])} wait(s), "
      f"about {chain['typical_minutes']} min on AWS ({waits}), among {chain['resources']} resources")
PY
