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
# Needs: wrk (apt-get install wrk), cargo.
#
#   bash benches/http-load.sh [--strict]
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
[ "${1:-}" = "--strict" ] && strict=1

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
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
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

[ "$failed" = 0 ] || exit 1
[ "$strict" = 1 ] && [ "$missed" = 1 ] && exit 1
exit 0
