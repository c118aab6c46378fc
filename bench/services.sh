#!/usr/bin/env bash
# Throughput and latency of the user and product services, release builds,
# each with its own PostgreSQL database on this machine, beside a bare axum
# handler in the same run as the ceiling. Load from wrk on loopback.
# Logging as shipped: JSON lines, the default level (one line per request).
# A second product service on the same database logs warnings only, to
# show what the per-request line costs. Prints the RSS of the product
# service after the load.
#
#   bash bench/services.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-32}

command -v wrk >/dev/null || { apt-get install -y -q wrk >/dev/null; }
. scripts/postgres.sh

echo "==> building release binaries" >&2
cargo build --quiet --release --bin user-service --bin product-service --example bare
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; stop_postgres; rm -rf "$work"; }
trap cleanup EXIT
start_postgres
python3 scripts/keys.py "$work/keys.json"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
user_port=$(free_port); product_port=$(free_port); quiet_port=$(free_port); bare_port=$(free_port)

common=(KEYS_FILE="$work/keys.json" LOG_FORMAT=json DB_POOL_SIZE=16)
# Limits far above the load: this measures the token route itself (the
# limits are measured by bench/login-flood.sh).
env "${common[@]}" PORT="$user_port" DATABASE_URL="$(new_database users)" EVENTS_DATABASE_URL="$(new_database bus)" \
  AUTH_RATE_PER_MINUTE=100000000 AUTH_RATE_BURST=100000000 \
  LOGIN_FAILURES_PER_MINUTE=100000000 LOGIN_FAILURES_BURST=100000000 \
  ADMIN_EMAIL=admin@bench.example ADMIN_PASSWORD="bench admin password" "$target/user-service" >"$work/user.log" 2>&1 &
pids+=($!)
products_db=$(new_database products)
env "${common[@]}" PORT="$product_port" DATABASE_URL="$products_db" "$target/product-service" >"$work/product.log" 2>&1 &
product_pid=$!
pids+=($product_pid)
env "${common[@]}" RUST_LOG=warn PORT="$quiet_port" DATABASE_URL="$products_db" "$target/product-service" >"$work/quiet.log" 2>&1 &
pids+=($!)
PORT="$bare_port" "$target/examples/bare" &
pids+=($!)
for port in "$user_port" "$product_port" "$quiet_port"; do
  ready=
  for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null && ready=1 && break; sleep 0.1; done
  [ -n "$ready" ] || { echo "a service on port $port did not become ready; its log:" >&2; cat "$work"/*.log >&2; exit 1; }
done

# A realistic menu and one registered customer.
admin=$(curl -fs -X POST "http://127.0.0.1:$user_port/auth/employee/token" -H 'content-type: application/json' \
  -d '{"email":"admin@bench.example","password":"bench admin password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
categories=(Lanche Acompanhamento Bebida Sobremesa)
for i in $(seq 1 40); do
  curl -fs -X POST "http://127.0.0.1:$product_port/products" -H "authorization: Bearer $admin" -H 'content-type: application/json' \
    -d "{\"name\":\"Item $i\",\"description\":\"Item number $i of the menu\",\"category\":\"${categories[$((i % 4))]}\",\"price_cents\":$((500 + i * 37)),\"preparation_minutes\":$((i % 12))}" >/dev/null
done
product_id=$(curl -fs "http://127.0.0.1:$product_port/products?per_page=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
etag=$(curl -fsI "http://127.0.0.1:$product_port/products" | tr -d '\r' | sed -n 's/^etag: //Ip')
[ -n "$etag" ] || { echo "GET /products answered no ETag: the 304 row would measure 200s" >&2; exit 1; }
revalidated=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "http://127.0.0.1:$product_port/products")
[ "$revalidated" = 304 ] || { echo "If-None-Match with the current ETag answered $revalidated, not 304" >&2; exit 1; }
curl -fs -X POST "http://127.0.0.1:$user_port/users" -H 'content-type: application/json' \
  -d '{"name":"Ana Souza","cpf":"529.982.247-25","email":"ana@bench.example"}' >/dev/null
cat >"$work/token.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"cpf":"52998224725"}'
wrk.headers["Content-Type"] = "application/json"
LUA

results="$work/results"
run() {
  local name=$1; shift
  wrk -t2 -c"$connections" -d"${seconds}s" --latency "$@" >"$work/wrk.out"
  python3 - "$name" "$work/wrk.out" >>"$results" <<'PY'
import re, sys
name, text = sys.argv[1], open(sys.argv[2]).read()
def ms(label):
    m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s)\s*$" % label, text, re.M)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(name, rps, ms("50"), ms("99"), errors.group(1) if errors else 0)
PY
}
echo "==> $seconds s per endpoint, $connections connections, 2 wrk threads" >&2
run "bare axum handler" "http://127.0.0.1:$bare_port/"
run "GET /products" "http://127.0.0.1:$product_port/products"
run "GET /products?category" "http://127.0.0.1:$product_port/products?category=Lanche"
run "GET /categories" "http://127.0.0.1:$product_port/categories"
run "GET /products/{id}" "http://127.0.0.1:$product_port/products/$product_id"
run "GET /products 304" -H "If-None-Match: $etag" "http://127.0.0.1:$product_port/products"
run "GET /products no log" "http://127.0.0.1:$quiet_port/products"
run "POST /auth/token" -s "$work/token.lua" "http://127.0.0.1:$user_port/auth/token"
rss=$(awk '/VmRSS/ {print $2}' "/proc/$product_pid/status")
lines=$(wc -l <"$work/product.log")

python3 - "$results" "$rss" "$lines" <<'PY'
import sys
rows = [line.rsplit(" ", 4) for line in open(sys.argv[1])]
bare = float(rows[0][1])
print(f"{'endpoint':<24}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs bare':>9}{'errors':>8}")
for name, rps, p50, p99, errors in rows:
    print(f"{name:<24}{float(rps):>10.0f}{float(p50):>9.2f}{float(p99):>9.2f}{float(rps)/bare:>9.2f}{int(errors):>8}")
by = {name: float(rps) for name, rps, *_ in rows}
logged, quiet = by["GET /products"], by["GET /products no log"]
print(f"the per-request log line costs {100 * (1 - logged / quiet):.0f}% of GET /products' throughput "
      f"({(1 / logged - 1 / quiet) * 1e6:.1f} us a request; {int(sys.argv[3])} lines written)")
print(f"product service RSS after the load: {int(sys.argv[2]) / 1024:.0f} MiB")
menu = next(r for r in rows if r[0] == "GET /products")
share, p99 = float(menu[1]) / bare, float(menu[3])
verdict = "met" if share >= 0.25 and p99 <= 5 else "MISSED"
print(f"aim (GET /products >= 0.25 of bare, p99 <= 5 ms): {verdict} ({share:.2f} of bare, p99 {p99:.2f} ms)")
PY
