#!/usr/bin/env bash
# Orders per second through the whole saga, and the time from POST /orders
# to payment.created, on the PostgreSQL transport, release build: the five
# services in one process over loopback sockets, a private PostgreSQL
# cluster, the fake Mercado Pago approving each QR code with a signed
# webhook.
#
#   bash bench/saga.sh [ORDERS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
export ORDERS=${1:-400} CLIENTS=${2:-16}
RUST_LOG=error cargo bench --quiet -p system-tests --bench saga
