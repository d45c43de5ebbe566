#!/usr/bin/env bash
# A throwaway PostgreSQL server for `make demo` and `make bench-hot`, from Debian's `postgresql`
# package (installed by them when missing):
#   deploy/local/postgres.sh start DIR PORT   initdb in DIR (a fresh folder), start the server on
#                                             127.0.0.1:PORT as user `weir` without a password,
#                                             every statement logged to DIR/server.log; prints
#                                             the server's pid
#   deploy/local/postgres.sh stop DIR         stop it (fast shutdown)
# As root, the server runs as `nobody` (PostgreSQL refuses root): DIR must then be somewhere
# `nobody` can reach, such as a folder made by `mktemp -d` under /tmp.
set -euo pipefail

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[[ -x "$bin/postgres" ]] || { echo "postgres.sh: no PostgreSQL server: install Debian's postgresql" >&2; exit 1; }

as_owner() {
  if [[ "$(id -u)" -eq 0 ]]; then
    setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"
  else
    "$@"
  fi
}

case "${1:-}" in
  start)
    dir=$2 port=$3
    mkdir -p "$dir"
    chmod 755 "$dir"
    [[ "$(id -u)" -eq 0 ]] && chown nobody:nogroup "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U weir --auth=trust --no-sync >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    as_owner "$bin/postgres" -D "$dir/data" -p "$port" -h 127.0.0.1 -k "$dir" \
      -c log_statement=all -c fsync=off -c synchronous_commit=off >"$dir/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do
      psql -X -q -h 127.0.0.1 -p "$port" -U weir -d postgres -c 'select 1' >/dev/null 2>&1 && { echo "$pid"; exit 0; }
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    echo "postgres.sh: the server did not start (log: $dir/server.log)" >&2
    tail -n 20 "$dir/server.log" >&2
    exit 1
    ;;
  stop)
    dir=$2
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
    ;;
  *)
    echo "usage: postgres.sh start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
