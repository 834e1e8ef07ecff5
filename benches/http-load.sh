#!/usr/bin/env bash
# Load benchmark of `herald serve` on loopback: a release build, a database
# seeded with SUBSCRIBERS active subscribers, then wrk against
#   1. GET  /unsubscribe/{token}  (the confirmation page), and
#   2. POST /unsubscribe/{token}  (RFC 8058 one-click; the first POST per
#      subscriber writes, repeats are reads),
# cycling through a pool of valid tokens. Prints req/s and latency
# percentiles, and the verdict against the targets (GET >= 20,000 req/s,
# p99 < 5 ms). Exits non-zero when any request failed (socket error or a
# status other than 2xx/3xx); with --strict, also when a target is missed.
#
# With --postgres URL (a server's maintenance database, e.g.
# postgres://postgres@127.0.0.1:5432/postgres) the same subscribers are also
# loaded into a fresh PostgreSQL database and GET and POST are run against
# one `serve` replica on it and then against two replicas at once (two wrk
# processes, half the connections each, req/s added up); every POST run
# starts from all subscribers active again. Printed after the SQLite runs.
#
# Needs: wrk (apt-get install wrk), cargo; psql for --postgres.
#
#   bash benches/http-load.sh [--strict] [--postgres URL]
# wrk is closed-loop: past saturation, latency grows with the number of
# connections while req/s stays flat, so the targets are checked at
# CONNECTIONS (16, a typical proxy-to-app pool) and GET is run again at
# STRESS_CONNECTIONS (64) for the saturated picture.
#
# Tunables (environment): DURATION (10s), CONNECTIONS (16),
# STRESS_CONNECTIONS (64), THREADS (1),
# SUBSCRIBERS (20000), HERALD_LOG (herald=info: one log line per request,
# as in production).
set -euo pipefail

strict=0
pg=
while [ $# -gt 0 ]; do
  case "$1" in
  --strict) strict=1; shift ;;
  --postgres) pg=$2; shift 2 ;;
  *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
STRESS_CONNECTIONS=${STRESS_CONNECTIONS:-64}
THREADS=${THREADS:-1}
SUBSCRIBERS=${SUBSCRIBERS:-20000}
export HERALD_LOG=${HERALD_LOG:-herald=info,warn}

command -v wrk >/dev/null || { echo "bench: wrk is required (apt-get install wrk)" >&2; exit 1; }

# The server in release; the link printer in debug (examples pull in the
# dev-dependencies, not worth a release build).
cargo build --quiet --release --bin herald
cargo build --quiet --example unsubscribe_links
target=${CARGO_TARGET_DIR:-target}
herald="$target/release/herald"
links="$target/debug/examples/unsubscribe_links"

tmp=$(mktemp -d)
server_pid=
replica_pids=()
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  for pid in "${replica_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  if [ -n "$pg" ]; then psql "$pg" -qc "DROP DATABASE IF EXISTS herald_http_bench WITH (FORCE)" >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

for var in $(env | sed -n 's/^\(HERALD__[A-Z0-9_]*\)=.*/\1/p'); do unset "$var"; done
export HERALD__DATABASE__URL="sqlite://$tmp/herald.db"
export HERALD__UNSUBSCRIBE__SECRET="bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export NO_COLOR=1

echo "== seeding $SUBSCRIBERS subscribers"
"$herald" init >/dev/null
awk -v n="$SUBSCRIBERS" 'BEGIN { print "email,name"; for (i = 1; i <= n; i++) printf "reader%d@example.org,Reader %d\n", i, i }' \
  >"$tmp/subscribers.csv"
"$herald" subscribers import "$tmp/subscribers.csv"
"$links" --status active --limit "$SUBSCRIBERS" | sed 's#^[a-z]*://[^/]*##' >"$tmp/paths.txt"
echo "token pool: $(wc -l <"$tmp/paths.txt") paths"

"$herald" serve --bind 127.0.0.1:0 >"$tmp/serve.out" 2>"$tmp/serve.log" &
server_pid=$!
base=
for _ in $(seq 100); do
  base=$(sed -n 's/^listening on //p' "$tmp/serve.out" 2>/dev/null || true)
  [ -n "$base" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$base" ] || { echo "bench: herald serve did not start" >&2; cat "$tmp/serve.log" >&2; exit 1; }
echo "server: $base (log level $HERALD_LOG)"
# Other work on the machine shows up in the tail latency: say how busy it was.
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

failed=0
missed=0

# run NAME METHOD CONNECTIONS CHECK: one wrk run; prints its report and a
# summary line; CHECK=yes compares with the targets.
run() {
  local name=$1 method=$2 conns=$3 check=$4 out="$tmp/wrk-$1.txt"
  echo
  echo "== $name: $method /unsubscribe/{token}, $conns connections, $THREADS wrk thread(s), $DURATION"
  wrk -t"$THREADS" -c"$conns" -d"$DURATION" --latency \
    -s benches/http-load.lua "$base" -- "$method" "$tmp/paths.txt" | tee "$out"
  local rps p99 p99_ms errors verdict=""
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  p99=$(awk '$1 == "99%" { print $2 }' "$out")
  p99_ms=$(echo "$p99" | awk '/us$/ { sub("us", ""); print $1 / 1000; next }
                              /ms$/ { sub("ms", ""); print $1; next }
                              /s$/  { sub("s", "");  print $1 * 1000 }')
  errors=$(grep -E 'Non-2xx or 3xx responses|Socket errors' "$out" || true)
  if [ -n "$errors" ]; then
    echo "FAIL - $name: errors: $errors"
    failed=1
  fi
  if [ "$check" = yes ]; then
    if awk -v r="$rps" -v p="$p99_ms" 'BEGIN { exit !(r >= 20000 && p < 5) }'; then
      verdict=" (target >= 20000 req/s and p99 < 5 ms: met)"
    else
      verdict=" (target >= 20000 req/s and p99 < 5 ms: missed)"
      missed=1
    fi
  fi
  echo "SUMMARY $name: ${rps} req/s, p99 ${p99}, $conns connections$verdict"
}

run get GET "$CONNECTIONS" yes
run get-saturated GET "$STRESS_CONNECTIONS" no
run post POST "$CONNECTIONS" no

echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
unsubscribed=$("$herald" subscribers list --status unsubscribed --format csv | tail -n +2 | wc -l)
echo
echo "subscribers unsubscribed by the POST run: $unsubscribed"
kill -TERM "$server_pid"
wait "$server_pid" || { echo "FAIL - herald serve did not stop cleanly"; failed=1; }
server_pid=
echo "server log lines: $(wc -l <"$tmp/serve.log")"

# --- PostgreSQL: one replica, then two ------------------------------------
if [ -n "$pg" ]; then
  psql "$pg" -qc "DROP DATABASE IF EXISTS herald_http_bench WITH (FORCE)" >/dev/null
  psql "$pg" -qc "CREATE DATABASE herald_http_bench" >/dev/null
  pg_db=$(python3 -c "import urllib.parse,sys; print(urllib.parse.urlparse(sys.argv[1])._replace(path='/herald_http_bench').geturl())" "$pg")
  export HERALD__DATABASE__URL=$pg_db
  echo
  echo "== PostgreSQL: seeding $SUBSCRIBERS subscribers into $pg_db"
  "$herald" init >/dev/null
  "$herald" subscribers import "$tmp/subscribers.csv" >/dev/null
  start_replica() { # → prints the base URL; appends the pid to replica_pids
    local out="$tmp/replica-$1.out"
    "$herald" serve --bind 127.0.0.1:0 >"$out" 2>"$tmp/replica-$1.log" &
    replica_pids+=($!)
    for _ in $(seq 100); do
      sed -n 's/^listening on //p' "$out" | grep -q . && break
      sleep 0.1
    done
    sed -n 's/^listening on //p' "$out"
  }
  replica_a=$(start_replica a)
  replica_b=$(start_replica b)
  [ -n "$replica_a" ] && [ -n "$replica_b" ] || { echo "bench: a replica did not start" >&2; exit 1; }
  # pg_run NAME METHOD BASES...: wrk against every base at once, the
  # connections split between them; prints the summed req/s.
  pg_run() {
    local name=$1 method=$2
    shift 2
    local n=$# per=$((CONNECTIONS / $#)) i=0 pids=() total
    [ "$method" = POST ] && psql "$pg_db" -qc "UPDATE subscribers SET status = 'active', unsubscribed_at = NULL, unsubscribe_source = NULL" >/dev/null
    for b in "$@"; do
      i=$((i + 1))
      wrk -t"$THREADS" -c"$per" -d"$DURATION" --latency -s benches/http-load.lua "$b" -- "$method" "$tmp/paths.txt" \
        >"$tmp/wrk-$name-$i.txt" &
      pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    if grep -qE 'Non-2xx or 3xx responses|Socket errors' "$tmp"/wrk-"$name"-*.txt; then
      echo "FAIL - $name: errors"; grep -hE 'Non-2xx or 3xx responses|Socket errors' "$tmp"/wrk-"$name"-*.txt
      failed=1
    fi
    total=$(awk '/^Requests\/sec:/ { s += $2 } END { printf "%.0f", s }' "$tmp"/wrk-"$name"-*.txt)
    p99s=$(awk '$1 == "99%" { printf "%s ", $2 }' "$tmp"/wrk-"$name"-*.txt)
    echo "SUMMARY $name: $total req/s ($n replica(s), $CONNECTIONS connections in all, p99 per replica: $p99s)"
  }
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  pg_run postgres-1-get GET "$replica_a"
  pg_run postgres-2-get GET "$replica_a" "$replica_b"
  pg_run postgres-1-post POST "$replica_a"
  pg_run postgres-2-post POST "$replica_a" "$replica_b"
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  for pid in "${replica_pids[@]}"; do kill -TERM "$pid"; wait "$pid" || { echo "FAIL - a replica did not stop cleanly"; failed=1; }; done
  replica_pids=()
fi

[ "$failed" = 0 ] || exit 1
[ "$strict" = 1 ] && [ "$missed" = 1 ] && exit 1
exit 0
