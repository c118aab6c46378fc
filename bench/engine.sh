#!/usr/bin/env bash
# `up` from nothing and `down` on AWS's clock: moto behind testkit's strict
# proxy, which plays back the times of cli/engine/aws-clock.toml at SCALE
# (default 1/10), so a NAT gateway is pending, a DB instance creating and
# backing up, a load balancer's interfaces linger, as long as on AWS,
# scaled. Prints, per command: the wall time, the critical path from the
# same table and the DAG, their ratio (aim: <= 1.05), the AWS calls and
# the polling calls (aim: <= 2 per minute of waiting per resource); and the
# calls of a no-op `up` and `plan` on the converged stack. A release build
# unless PROFILE=dev (the waits dominate either way).
#
#   bash bench/engine.sh [SCALE]
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${1:-0.1}

. scripts/moto.sh
build_techctl
out=$(mktemp -d)
AWS_PROXY_LOG="$out/proxy.log" start_aws "$scale"
export TECHCTL_AWS_CLOCK_SCALE=$scale

run() {
  local name=$1; shift
  local start end
  start=$(date +%s.%N)
  "$TECHCTL" --output json --yes "$@" >"$out/$name.json" 2>"$out/$name.err" || {
    echo "$name failed:" >&2; tail -5 "$out/$name.err" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$start $end" >"$out/$name.time"
}

run up up --no-deploy
run noop-up up --no-deploy
run plan plan
run down down --force-delete-secrets

python3 - "$out" "$scale" <<'PY'
import json, os, sys
out, scale = sys.argv[1], float(sys.argv[2])

def docs(name):
    return [json.loads(l) for l in open(os.path.join(out, name + ".json")) if l.strip()]

def wall(name):
    start, end = map(float, open(os.path.join(out, name + ".time")).read().split())
    return end - start

print(f"techctl on AWS's clock at 1/{1/scale:g}; AWS's times are these divided by {scale:g}")
print(f"{'command':<16}{'wall':>9}{'critical':>10}{'ratio':>8}{'calls':>7}{'polls':>7}{'worst polls/min':>17}")
for name in ["up", "down"]:
    s = next(d for d in docs(name) if d.get("summary"))
    worst = 0.0
    for w in s["summary"]["waits"]:
        aws_minutes = w["seconds"] / scale / 60
        if aws_minutes >= 1:
            worst = max(worst, w["polls"] / aws_minutes)
    path = s["critical_path_seconds"]
    ratio = s["summary"]["elapsed_seconds"] / path if path else float("nan")
    print(f"{name:<16}{s['summary']['elapsed_seconds']:>8.1f}s{path:>9.1f}s{ratio:>8.3f}"
          f"{s['total_aws_calls']:>7}{s['polling_calls']:>7}{worst:>17.2f}")
    chain = " -> ".join(f"{l['id']} ({l['seconds']} s)" for l in s["critical_path"]["chain"])
    print(f"  critical path on AWS: {s['critical_path']['seconds']} s: {chain}")

kinds = {c["kind"] for c in next(d for d in docs("plan") if "plan" in d)["plan"]["changes"]}
noop = next(d for d in docs("noop-up") if "total_aws_calls" in d)["total_aws_calls"]
plan = next(d for d in docs("plan") if "aws_calls" in d)["aws_calls"]
print(f"no-op up: {noop} AWS calls, plan: {plan}, for {len(kinds)} resource kinds "
      f"({noop / len(kinds):.1f} per kind)")
PY
