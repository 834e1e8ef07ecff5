#!/usr/bin/env bash
# Delivery benchmark, side by side in one run: Postfix's smtp-sink is the
# receiver; first Postfix's smtp-source pushes messages of herald's size over
# the same number of connections, then `herald send --live` delivers the
# bundled issue to 100,000 subscribers with the ledger on. Prints both
# rates, their ratio, and herald's peak RSS.
#
# Needs: Debian package postfix (for smtp-sink/smtp-source; no daemon needed).
# Usage: bash benches/smtp_bench.sh [SUBSCRIBERS] [CONNECTIONS]
set -euo pipefail

N=${1:-100000}
CONN=${2:-20}
PORT=${PORT:-25250}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERALD="$ROOT/target/release/herald"
ISSUE=${ISSUE:-$ROOT/issues/2018-12-14-migration-news.toml}
command -v smtp-sink >/dev/null || PATH=$PATH:/usr/sbin
command -v smtp-sink >/dev/null || { echo "smtp-sink not found: apt-get install postfix" >&2; exit 2; }
[ -x "$HERALD" ] || (cd "$ROOT" && cargo build --release --quiet)

WORK=$(mktemp -d)
SINK_PID=
cleanup() { [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
cd "$WORK"
env | grep -q '^HERALD' && unset $(env | grep -o '^HERALD[A-Z_]*')

smtp-sink -u nobody 127.0.0.1:$PORT 1024 &
SINK_PID=$!
sleep 0.5

export HERALD__TRANSPORT__KIND=smtp HERALD__SMTP__HOST=127.0.0.1 HERALD__SMTP__PORT=$PORT
export HERALD__SENDER__CONCURRENCY=$CONN HERALD__SENDER__RATE_PER_SECOND=1000000 HERALD__SENDER__BURST=1000
export HERALD__UNSUBSCRIBE__SECRET=bench-signing-key-0123456789abcdefghijk HERALD_LOG=herald=warn
# A list identity of its own: a live send through SMTP refuses the demo's.
export HERALD__SENDER__FROM_ADDRESS=news@bench.example.net HERALD__NEWSLETTER__LIST_ID=news.bench.example.net
export HERALD__NEWSLETTER__POSTAL_ADDRESS="herald bench, 1 Bench Road" HERALD__HTTP__PUBLIC_BASE_URL=https://news.bench.example.net

python3 - "$N" > subs.csv <<'PY'
import sys
n = int(sys.argv[1])
print("email,name")
for i in range(n):
    print(f"reader{i:07d}@example{i % 50}.org,Reader {i}")
PY
"$HERALD" init >/dev/null
"$HERALD" subscribers import subs.csv >/dev/null

# Size of herald's messages, so smtp-source sends the same bytes.
SIZE=$("$HERALD" send "$ISSUE" --dry-run | sed -n 's/.*(\([0-9]*\) bytes each.*/\1/p')
M=$N
echo "messages: $N, ~$SIZE bytes each, $CONN connections, receiver smtp-sink on 127.0.0.1:$PORT"

t0=$(date +%s.%N)
smtp-source -d -s "$CONN" -l "$SIZE" -m "$M" -f news@example.org -t reader@example.org 127.0.0.1:$PORT
t1=$(date +%s.%N)
SRC_RATE=$(python3 -c "print(f'{$M/($t1-$t0):.0f}')")
echo "smtp-source: $M messages in $(python3 -c "print(f'{$t1-$t0:.2f}')") s = $SRC_RATE msg/s"

/usr/bin/time -f '%M' -o rss.txt "$HERALD" send "$ISSUE" --live --yes > herald.out 2> herald.err || { cat herald.err; exit 1; }
RSS_KB=$(tail -1 rss.txt)
RATE=$("$HERALD" status "$ISSUE" --format json | python3 -c "
import json,sys; s=json.load(sys.stdin); c=s['counts']
assert c['sent'] == $N, c
print(f\"{c['sent']/s['elapsed_seconds']:.0f}\")")
cat herald.out
echo "herald:      $N messages, ledger on = $RATE msg/s (wall time from start to finish of the live send)"
python3 -c "
r=$RATE/$SRC_RATE; rss=$RSS_KB/1024
print(f'ratio herald/smtp-source: {r:.2f} (target >= 0.80: {\"met\" if r>=0.8 else \"NOT met\"})')
print(f'herald peak RSS: {rss:.1f} MiB (target <= 64 MB: {\"met\" if rss*1.048576<=64 else \"NOT met\"})')"
