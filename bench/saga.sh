#!/usr/bin/env bash
# Orders per second through the whole saga, and the time from POST /orders
# to payment.created, on the PostgreSQL transport, release build: the five
# services in one process over loopback sockets, a private PostgreSQL
# cluster, the fake Mercado Pago approving each QR code with a signed
# webhook. Then where the time went: the CPU an order costs (PostgreSQL's,
# the services'), its PostgreSQL transactions, and the rate that CPU allows.
#
#   bash bench/saga.sh [ORDERS] [CLIENTS]
#   POLL_MS=100 bash bench/saga.sh 800 64   # screens that look every 100 ms
set -euo pipefail
cd "$(dirname "$0")/.."
export ORDERS=${1:-400} CLIENTS=${2:-16}
RUST_LOG=error cargo bench --quiet -p system-tests --bench saga
