#!/usr/bin/env bash
# An order from start to finish against a running `techctl dev`, with curl:
# a customer's token, the menu, the order, its Mercado Pago QR code, the
# payment (through the sandbox, which sends the signed webhook), the
# kitchen's three steps and the final status. Each step prints what it
# sent and what came back.
#
#   bash examples/order-flow.sh            # in the folder where techctl dev runs
#   GATEWAY=http://127.0.0.1:8080 SANDBOX=http://127.0.0.1:8090 bash examples/order-flow.sh
set -euo pipefail

for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "order-flow.sh needs $tool: apt-get install $tool" >&2; exit 1; }
done

# Where the system is: the environment, else the running techctl dev's
# state file in this folder.
state=.techctl/dev.json
from_state() {
  [ -f "$state" ] || { echo "techctl dev is not running here (no $state): start it, or set GATEWAY and SANDBOX" >&2; exit 1; }
  jq -r "$1" "$state"
}
GATEWAY=${GATEWAY:-$(from_state .gateway_url)}
SANDBOX=${SANDBOX:-$(from_state .sandbox_url)}
if [ -z "${EMPLOYEE_EMAIL:-}" ] && [ -f .techctl/local.json ]; then
  EMPLOYEE_EMAIL=$(jq -r .employee_email .techctl/local.json)
  EMPLOYEE_PASSWORD=$(jq -r .employee_password .techctl/local.json)
fi
: "${EMPLOYEE_EMAIL:?set EMPLOYEE_EMAIL and EMPLOYEE_PASSWORD (techctl dev prints them at start)}"
: "${EMPLOYEE_PASSWORD:?set EMPLOYEE_PASSWORD}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# call METHOD PATH [TOKEN] [BODY]: prints the request and the answer, fails
# on anything but 2xx, leaves the answer's body in $body.
call() {
  local method=$1 path=$2 token=${3:-} data=${4:-}
  local args=(-sS -X "$method" -w '\n%{http_code}' -H 'content-type: application/json')
  [ -n "$token" ] && args+=(-H "authorization: Bearer $token")
  [ -n "$data" ] && args+=(-d "$data")
  echo "> $method $path${data:+ $data}"
  local out status
  out=$(curl "${args[@]}" "$GATEWAY$path")
  status=${out##*$'\n'}
  body=${out%$'\n'*}
  echo "< $status $(echo "$body" | jq -c . 2>/dev/null | cut -c1-300)"
  [[ $status == 2* ]] || { echo "unexpected answer: $status" >&2; exit 1; }
}

# wait_for ORDER_ID JQ_CONDITION WHAT: polls the order until the condition holds.
wait_for() {
  local id=$1 condition=$2 what=$3
  for _ in $(seq 1 150); do
    order=$(curl -sS -H "authorization: Bearer $staff" "$GATEWAY/orders/$id")
    if echo "$order" | jq -e "$condition" >/dev/null; then
      echo "  order $id: $what"
      return
    fi
    sleep 0.2
  done
  echo "order $id never $what: $order" >&2
  exit 1
}

# A valid CPF: nine random digits and their two check digits.
cpf() {
  local d=() i sum r
  for i in $(seq 0 8); do d+=($((RANDOM % 10))); done
  for n in 9 10; do
    sum=0
    for i in $(seq 0 $((n - 1))); do sum=$((sum + d[i] * (n + 1 - i))); done
    r=$(( (sum * 10) % 11 % 10 ))
    d+=("$r")
  done
  printf '%s' "${d[@]}"
}

step "1. The customer signs up with their CPF and gets a token"
customer_cpf=$(cpf)
call POST /users "" "{\"name\":\"Maria Silva\",\"cpf\":\"$customer_cpf\",\"email\":\"maria.$customer_cpf@example.com\"}"
call POST /auth/token "" "{\"cpf\":\"$customer_cpf\"}"
customer=$(echo "$body" | jq -r .access_token)

step "2. The menu, by category"
call GET /categories
for category in Lanche Acompanhamento Bebida Sobremesa; do
  call GET "/products?category=$category"
  echo "$body" | jq -r '.items[] | "    \(.name)  R$ \(.price_cents / 100)"'
done
burger=$(curl -sS "$GATEWAY/products?category=Lanche" | jq -r '.items[0].id')
side=$(curl -sS "$GATEWAY/products?category=Acompanhamento" | jq -r '.items[0].id')
drink=$(curl -sS "$GATEWAY/products?category=Bebida" | jq -r '.items[0].id')

step "3. The order: a sandwich (no onion), a side and a drink"
call POST /orders "$customer" "{\"items\":[{\"product_id\":\"$burger\",\"quantity\":1,\"note\":\"sem cebola\"},{\"product_id\":\"$side\",\"quantity\":1},{\"product_id\":\"$drink\",\"quantity\":2}]}"
order_id=$(echo "$body" | jq -r .id)
echo "  order number $(echo "$body" | jq -r .number), total R$ $(echo "$body" | jq -r '.total_cents / 100'), $(echo "$body" | jq -r .status)"

step "4. The staff sign in; the order gets its Mercado Pago QR code"
call POST /auth/employee/token "" "{\"email\":\"$EMPLOYEE_EMAIL\",\"password\":\"$EMPLOYEE_PASSWORD\"}"
staff=$(echo "$body" | jq -r .access_token)
wait_for "$order_id" '.payment.qr_data != null' "shows its QR code"
call GET "/orders/$order_id" "$customer"
echo "  QR: $(echo "$body" | jq -r .payment.qr_data | cut -c1-60)…"

step "5. The customer pays the QR code (the sandbox sends the signed webhook)"
echo "> POST $SANDBOX/sandbox/orders/$order_id/approve"
curl -sS -X POST "$SANDBOX/sandbox/orders/$order_id/approve" | jq -c .
wait_for "$order_id" '.status == "RECEIVED"' "is paid and RECEIVED by the kitchen"

step "6. The kitchen: started, ready, delivered"
ticket=""
for _ in $(seq 1 150); do
  ticket=$(curl -sS -H "authorization: Bearer $staff" "$GATEWAY/production" | jq -r --arg id "$order_id" '.[] | select(.order_id == $id) | .id')
  [ -n "$ticket" ] && break
  sleep 0.2
done
[ -n "$ticket" ] || { echo "the kitchen never got a ticket for $order_id" >&2; exit 1; }
call PUT "/production/$ticket/started" "$staff"
wait_for "$order_id" '.status == "IN_PREPARATION"' "is IN_PREPARATION"
call PUT "/production/$ticket/completed" "$staff"
wait_for "$order_id" '.status == "READY"' "is READY at the counter"
call PUT "/production/$ticket/delivered" "$staff"
wait_for "$order_id" '.status == "FINISHED"' "is FINISHED"

step "7. The final status and its history"
call GET "/orders/$order_id" "$customer"
echo "$body" | jq -r '.history[] | "    \(.at)  \(.status)"'
echo
echo "Order $order_id went from AWAITING_PAYMENT to FINISHED."
