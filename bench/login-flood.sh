#!/usr/bin/env bash
# A flood of wrong employee logins against the user service (release
# build, its own PostgreSQL, loopback), as from CLIENTS clients behind the
# gateway (x-forwarded-for, TRUSTED_PROXIES=127.0.0.1/32), while another
# client signs in with the right password every half second. Prints the
# flood's answers by status, the valid logins' slowest answer, and the
# service's resident memory (peak and at the end).
# Aim: RSS under 128 MiB, every valid login answered 200 within 1 s, the
# flood answered 401/429/503 and never 500, and some of it refused by a
# limit (429 or 503). The flood stops after LOGINS requests or 60 s.
#
#   bash bench/login-flood.sh [LOGINS] [AT_ONCE] [CLIENTS]
# (CLIENTS=LOGINS: every wrong login from an address of its own, so only
# the hashing pool stands in the way.)
set -euo pipefail
cd "$(dirname "$0")/.."
total=${1:-240}
at_once=${2:-48}
clients=${3:-8}

. scripts/postgres.sh
profile=${PROFILE:-release}
echo "==> building the user service ($profile)" >&2
cargo build --quiet --profile "$profile" --bin user-service
dir=$profile; [ "$profile" = dev ] && dir=debug
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/$dir

work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; stop_postgres; rm -rf "$work"; }
trap cleanup EXIT
start_postgres
python3 scripts/keys.py "$work/keys.json"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env KEYS_FILE="$work/keys.json" RUST_LOG=warn LOG_FORMAT=json PORT="$port" \
  DATABASE_URL="$(new_database users)" EVENTS_DATABASE_URL="$(new_database bus)" TRUSTED_PROXIES=127.0.0.1/32 \
  ADMIN_EMAIL=admin@bench.example ADMIN_PASSWORD="bench admin password" \
  "$target/user-service" >"$work/user.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null || { cat "$work/user.log" >&2; exit 1; }

python3 - "$port" "$pid" "$total" "$at_once" "$clients" <<'PY'
import json, sys, threading, time, urllib.request, urllib.error, collections
port, pid, total, at_once, clients = (int(a) for a in sys.argv[1:6])
url = f"http://127.0.0.1:{port}/auth/employee/token"

def login(email, password, client):
    body = json.dumps({"email": email, "password": password}).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "content-type": "application/json", "x-forwarded-for": client})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    except Exception:
        status = "error"
    return status, time.monotonic() - started

def rss():
    fields = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

flood = collections.Counter()
lock = threading.Lock()
sent = iter(range(total))
deadline = 60.0
def flooder():
    while time.monotonic() - started < deadline:
        with lock:
            n = next(sent, None)
        if n is None:
            return
        status, _ = login(f"nobody{n}@bench.example", "wrong password",
                          f"203.0.{113 + (n % clients) // 250}.{(n % clients) % 250}")
        with lock:
            flood[status] += 1

valid, done = [], threading.Event()
def sign_in_meanwhile():
    while not done.is_set():
        valid.append(login("admin@bench.example", "bench admin password", "198.51.100.1"))
        time.sleep(0.5)

samples = []
def sample():
    while not done.is_set():
        samples.append(rss()[0])
        time.sleep(0.05)

before = rss()[0]
started = time.monotonic()  # read by the flooders' deadline
helpers = [threading.Thread(target=sign_in_meanwhile), threading.Thread(target=sample)]
flooders = [threading.Thread(target=flooder) for _ in range(at_once)]
for t in helpers + flooders:
    t.start()
for t in flooders:
    t.join()
time.sleep(1.0)
done.set()
for t in helpers:
    t.join()
took = time.monotonic() - started
now, peak = rss()
statuses = collections.Counter(s for s, _ in valid)
print(f"flood: {total} wrong logins, {at_once} at a time, from {clients} clients, in {took:.1f} s")
print("  answers: " + ", ".join(f"{s}: {n}" for s, n in sorted(flood.items(), key=str)))
print(f"valid logins from another client meanwhile: {len(valid)}, "
      + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items(), key=str))
      + f"; slowest {max(t for _, t in valid):.3f} s")
print(f"user service RSS: {before:.1f} MiB before, peak {peak:.1f} MiB, {now:.1f} MiB after")
limited = flood[429] + flood[503]
print(f"refused by a limit: {limited} of {sum(flood.values())}")
ok = (peak < 128 and set(statuses) == {200} and max(t for _, t in valid) < 1.0
      and 500 not in flood and "error" not in flood and limited > 0)
print("aims met" if ok else "AIMS NOT MET")
sys.exit(0 if ok else 1)
PY
