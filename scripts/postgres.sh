# Sourced by the scripts that need PostgreSQL: a private cluster from the
# system's binaries on a free port, stopped and removed when the script exits.

# Starts the cluster; sets PGPORT and PG_BIN.
start_postgres() {
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    echo "PostgreSQL's server binaries were not found: apt-get install postgresql" >&2
    exit 1
  fi
  PG_DIR=$(mktemp -d)
  PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  local as=()
  # PostgreSQL refuses to run as root.
  if [ "$(id -u)" = 0 ]; then chown postgres "$PG_DIR"; as=(runuser -u postgres --); fi
  "${as[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >/dev/null
  "${as[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
    -o "-p $PGPORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=300" start >/dev/null
  PG_STOP=("${as[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop)
  export PGPORT PG_BIN
}

stop_postgres() {
  [ -n "${PG_DIR:-}" ] || return 0
  "${PG_STOP[@]}" >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}

# Creates a database and prints its URL.
new_database() {
  "$PG_BIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres "$1"
  echo "postgres://postgres@127.0.0.1:$PGPORT/$1"
}
