#!/usr/bin/env bash
# Delivery benchmark: what the operator waits for, side by side with Postfix.
#
# Postfix's smtp-sink is the receiver. For every configuration
# (CONNECTIONS x RECIPIENTS) and run, Postfix's smtp-source first pushes the
# same number of messages of herald's size over the same number of
# connections (-d: connections reused), then the whole
# `herald send ISSUE --live --yes` process is timed (start-up, audience
# snapshot, delivery, final commit) on the default settings except
# `sender.rate_per_second` (unlimited) and `sender.concurrency` (no extra
# burst). Prints each run's rates and their ratio, then per configuration the
# min–max ranges over the runs, herald's peak RSS, status's own rate
# (delivery only, from the ledger's timestamps), and CPU per message (user +
# system) of herald and of smtp-sink while herald sent (smtp-sink's while
# smtp-source sent is on each run's line): on a 2-core machine the two share
# the processors, so what herald spends is taken from the receiver. Also
# context switches per message (voluntary + involuntary, every thread, from
# /usr/bin/time) of herald and of smtp-source: a count, steadier than the
# times when the host is busy, and each switch is CPU taken from both sides.
#
# Usage: bash benches/smtp_bench.sh [options]
#   --runs N          repeat every configuration N times (default 1)
#   --only LIST       configurations CONNxRECIPIENTS, comma separated
#                     (default 8x20000,20x20000,8x100000,20x100000)
#   --instructions    also print the instructions per delivered message
#                     (valgrind callgrind, whole process, marginal cost:
#                     (instructions at 2,200 − at 200 recipients) / 2,000, at
#                     8 connections), next to smtp-source's counted the same way
#   --dkim            also print msg/s at 8 connections, 20,000 recipients,
#                     with DKIM off, RSA-2048 and Ed25519 (keys made with
#                     `herald dkim keygen`)
#   --postgres URL    also run every herald send on PostgreSQL (URL: a server's
#                     maintenance database, e.g. postgres://postgres@127.0.0.1:5432/postgres;
#                     a fresh database per run, copied from a template with the
#                     audience), next to the SQLite run against the same
#                     smtp-source run; adds the PostgreSQL server's CPU per message
#   --no-wall         skip the wall-clock comparison (with --instructions/--dkim)
#   --keep DIR        keep the callgrind files in DIR (for callgrind_annotate)
#
# Examples:
#   bash benches/smtp_bench.sh --only 8x20000 --runs 1     # quick check (~30 s)
#   bash benches/smtp_bench.sh --runs 3                    # the README's table
#   bash benches/smtp_bench.sh --no-wall --instructions    # stable CPU figure
#   bash benches/smtp_bench.sh --no-wall --dkim
#   bash benches/smtp_bench.sh --runs 3 --only 8x20000,20x20000 --postgres postgres://postgres@127.0.0.1:5432/postgres
#
# Needs: Debian package postfix (smtp-sink/smtp-source; no daemon needed),
# /usr/bin/time (peak RSS), valgrind for --instructions, python3.
# Environment: PORT (default 25250), ISSUE (default: the bundled issue),
# HERALD (default: target/release/herald, built if missing).
set -euo pipefail

RUNS=1
ONLY=8x20000,20x20000,8x100000,20x100000
INSTR=0
DKIM=0
WALL=1
KEEP=
PG=
while [ $# -gt 0 ]; do
    case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --instructions) INSTR=1; shift ;;
    --dkim) DKIM=1; shift ;;
    --no-wall) WALL=0; shift ;;
    --postgres) PG=$2; shift 2 ;;
    --keep) KEEP=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

PORT=${PORT:-25250}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERALD=${HERALD:-$ROOT/target/release/herald}
ISSUE=${ISSUE:-$ROOT/issues/2018-12-14-migration-news.toml}
command -v smtp-sink >/dev/null || PATH=$PATH:/usr/sbin
command -v smtp-sink >/dev/null || { echo "smtp-sink not found: apt-get install postfix" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time not found: apt-get install time" >&2; exit 2; }
[ "$INSTR" = 0 ] || command -v valgrind >/dev/null || { echo "valgrind not found" >&2; exit 2; }
[ -x "$HERALD" ] || (cd "$ROOT" && cargo build --release --quiet)

WORK=$(mktemp -d)
SINK_PID=
cleanup() {
    [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null
    if [ -n "$PG" ]; then
        for db in $(psql "$PG" -qAtc "SELECT datname FROM pg_database WHERE datname LIKE 'herald_bench_%'"); do
            psql "$PG" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
        done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
env | grep -q '^HERALD_' && unset $(env | grep -o '^HERALD_[A-Z_]*')

smtp-sink -u nobody -c 127.0.0.1:$PORT 1024 >/dev/null &
SINK_PID=$!
# CPU seconds (user + system) smtp-sink has used so far.
sink_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$SINK_PID/stat"; }
sleep 0.5

export HERALD__TRANSPORT__KIND=smtp HERALD__SMTP__HOST=127.0.0.1 HERALD__SMTP__PORT=$PORT
export HERALD__SENDER__RATE_PER_SECOND=100000  # the highest accepted
export HERALD__UNSUBSCRIBE__SECRET=bench-signing-key-0123456789abcdefghijk HERALD_LOG=herald=warn
# A list identity of its own: a live send through SMTP refuses the demo's.
export HERALD__SENDER__FROM_ADDRESS=news@bench.example.net HERALD__NEWSLETTER__LIST_ID=news.bench.example.net
export HERALD__NEWSLETTER__POSTAL_ADDRESS="herald bench, 1 Bench Road" HERALD__HTTP__PUBLIC_BASE_URL=https://news.bench.example.net

py() { python3 -c "$1"; }

# One installation per audience size, copied fresh for every send.
base() { # N → directory holding an initialised database with N subscribers
    local n=$1 dir="$WORK/base-$1"
    if [ ! -d "$dir" ]; then
        mkdir -p "$dir"
        python3 - "$n" > "$dir.csv" <<'PY'
import sys
n = int(sys.argv[1])
print("email,name")
for i in range(n):
    print(f"reader{i:07d}@example{i % 50}.org,Reader {i}")
PY
        (cd "$dir" && "$HERALD" init >/dev/null && "$HERALD" subscribers import "$dir.csv" >/dev/null)
    fi
    echo "$dir"
}
fresh() { # N → a fresh copy of base N, as the current directory's "run"
    local src
    src=$(base "$1")
    rm -rf "$WORK/run"
    cp -a "$src" "$WORK/run"
}

# PostgreSQL: one template database per audience size, copied per send.
pg_url() { py "import urllib.parse,sys; print(urllib.parse.urlparse('$PG')._replace(path='/$1').geturl())"; }
pg_base() { # N → template database name holding an initialised database with N subscribers
    local n=$1 name="herald_bench_base_$1"
    if [ -z "$(psql "$PG" -qAtc "SELECT 1 FROM pg_database WHERE datname = '$name'")" ]; then
        base "$n" >/dev/null
        psql "$PG" -qc "CREATE DATABASE $name" >/dev/null
        mkdir -p "$WORK/pg-$n"
        (cd "$WORK/pg-$n" && export HERALD__DATABASE__URL="$(pg_url "$name")" &&
            "$HERALD" init >/dev/null && "$HERALD" subscribers import "$WORK/base-$n.csv" >/dev/null)
    fi
    echo "$name"
}
pg_fresh() { # N → URL of a fresh copy of the template for N
    local tpl
    tpl=$(pg_base "$1")
    psql "$PG" -qc "DROP DATABASE IF EXISTS herald_bench_run WITH (FORCE)" >/dev/null
    psql "$PG" -qc "CREATE DATABASE herald_bench_run TEMPLATE $tpl" >/dev/null
    pg_url herald_bench_run
}
# CPU seconds (user + system) the postgres processes have used so far.
pg_cpu() {
    local hz total=0 pid
    hz=$(getconf CLK_TCK)
    for pid in $(pgrep -x postgres || true); do
        # Own time plus that of exited children (a connection's backend
        # ends with the connection and is counted in the server's).
        total=$(awk -v t="$total" -v hz="$hz" '{ print t + ($14 + $15 + $16 + $17) / hz }' "/proc/$pid/stat" 2>/dev/null || echo "$total")
    done
    echo "$total"
}

fresh 200
SIZE=$(cd "$WORK/run" && "$HERALD" send "$ISSUE" --dry-run | sed -n 's/.*(\([0-9]*\) bytes each.*/\1/p')
[ -n "$SIZE" ] || { echo "could not read the message size from the dry run" >&2; exit 1; }
echo "issue: $(basename "$ISSUE"), ~$SIZE bytes per message; receiver smtp-sink on 127.0.0.1:$PORT"

# smtp-source CONN M → "seconds (wall) context_switches_per_message"
source_run() {
    /usr/bin/time -f '%e %w %c' -o "$WORK/src.time" \
        smtp-source -d -s "$1" -l "$SIZE" -m "$2" -f news@example.org -t reader@example.org 127.0.0.1:$PORT
    tail -1 "$WORK/src.time" | awk -v n="$2" '{ printf "%s %.2f\n", $1, ($2 + $3) / n }'
}

# herald_run CONN N [extra env...] → "seconds rss_kb status_rate cpu_ms
# context_switches_per_message" (voluntary + involuntary, all threads); fails
# loudly. BACKEND=postgres runs it on a fresh PostgreSQL copy of the audience.
herald_run() {
    local conn=$1 n=$2
    shift 2
    fresh "$n"
    if [ "${BACKEND:-sqlite}" = postgres ]; then
        set -- "$@" HERALD__DATABASE__URL="${PG_RUN_URL:-$(pg_fresh "$n")}"
    fi
    (
        cd "$WORK/run"
        env HERALD__SENDER__CONCURRENCY="$conn" "$@" /usr/bin/time -f '%U %S %e %M %w %c' -o "$WORK/herald.time" \
            "$HERALD" send "$ISSUE" --live --yes >"$WORK/herald.out" 2>"$WORK/herald.err" ||
            { cat "$WORK/herald.err" >&2; exit 1; }
        env "$@" "$HERALD" status "$ISSUE" --format json | python3 -c "
import json,sys; s=json.load(sys.stdin); c=s['counts']
assert c['sent'] == $n, c
u, k, e, m, w, i = open('$WORK/herald.time').read().split()[-6:]
print(e, m, f\"{c['sent']/s['elapsed_seconds']:.0f}\", f'{(float(u) + float(k)) * 1000 / $n:.3f}', f'{(int(w) + int(i)) / $n:.2f}')"
    )
}

range() { # values... → "min–max" (or the one value)
    py "
v=[float(x) for x in '$*'.split()]
f=(lambda x: f'{x:.2f}') if max(v) < 10 else (lambda x: f'{x:,.0f}')
print(f(min(v)) if min(v)==max(v) else f'{f(min(v))}–{f(max(v))}')"
}

if [ "$WALL" = 1 ]; then
    SUMMARY=()
    PG_SUMMARY=()
    for cfg in ${ONLY//,/ }; do
        conn=${cfg%x*}
        n=${cfg#*x}
        base "$n" >/dev/null
        ratios= hrates= srates= rsss= status_rates= hcpus= sinkcpus= hcss= scss=
        pratios= prates= prsss= pstatus_rates= pcpus= psinkcpus= pgcpus=
        for run in $(seq 1 "$RUNS"); do
            c0=$(sink_cpu)
            read -r st scs <<<"$(source_run "$conn" "$n")"
            c1=$(sink_cpu)
            read -r ht rss srate hcpu hcs <<<"$(herald_run "$conn" "$n")"
            c2=$(sink_cpu)
            # smtp-sink's CPU per message while each side sent.
            sink_s=$(py "print(f'{($c1 - $c0) * 1000 / $n:.3f}')")
            sink_h=$(py "print(f'{($c2 - $c1) * 1000 / $n:.3f}')")
            s_rate=$(py "print(f'{$n/$st:.0f}')")
            h_rate=$(py "print(f'{$n/$ht:.0f}')")
            ratio=$(py "print(f'{$st/$ht:.3f}')")
            printf '%2s connections, %6s recipients, run %s: smtp-source %6s msg/s (%5.1f s); herald %6s msg/s (%5.1f s, status %s msg/s), ratio %.2f, peak RSS %.1f MiB; CPU ms/msg: herald %s, smtp-sink %s (%s with smtp-source); context switches/msg: herald %s, smtp-source %s\n' \
                "$conn" "$n" "$run" "$s_rate" "$st" "$h_rate" "$ht" "$srate" "$ratio" "$(py "print($rss/1024)")" "$hcpu" "$sink_h" "$sink_s" "$hcs" "$scs"
            ratios+=" $ratio" hrates+=" $h_rate" srates+=" $s_rate" rsss+=" $(py "print($rss/1024)")" status_rates+=" $srate" hcpus+=" $hcpu" sinkcpus+=" $sink_h" hcss+=" $hcs" scss+=" $scs"
            if [ -n "$PG" ]; then
                run_url=$(pg_fresh "$n")
                p0=$(pg_cpu)
                c2=$(sink_cpu)
                read -r pt prss psrate pcpu _ <<<"$(BACKEND=postgres PG_RUN_URL=$run_url herald_run "$conn" "$n")"
                c3=$(sink_cpu)
                p1=$(pg_cpu)
                psink=$(py "print(f'{($c3 - $c2) * 1000 / $n:.3f}')")
                pgcpu=$(py "print(f'{($p1 - $p0) * 1000 / $n:.3f}')")
                p_rate=$(py "print(f'{$n/$pt:.0f}')")
                pratio=$(py "print(f'{$st/$pt:.3f}')")
                printf '%2s connections, %6s recipients, run %s: herald on PostgreSQL %6s msg/s (%5.1f s, status %s msg/s), ratio %.2f, peak RSS %.1f MiB; CPU ms/msg: herald %s, postgres %s, smtp-sink %s\n' \
                    "$conn" "$n" "$run" "$p_rate" "$pt" "$psrate" "$pratio" "$(py "print($prss/1024)")" "$pcpu" "$pgcpu" "$psink"
                pratios+=" $pratio" prates+=" $p_rate" prsss+=" $(py "print($prss/1024)")" pstatus_rates+=" $psrate" pcpus+=" $pcpu" psinkcpus+=" $psink" pgcpus+=" $pgcpu"
            fi
        done
        SUMMARY+=("$(printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' "$conn" "$n" "$(range $srates)" "$(range $hrates)" "$(range $ratios)" "$(range $status_rates)" "$(range $rsss)" "$(range $hcpus)" "$(range $sinkcpus)" "$(range $hcss)" "$(range $scss)")")
        if [ -n "$PG" ]; then
            PG_SUMMARY+=("$(printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' "$conn" "$n" "$(range $srates)" "$(range $hrates)" "$(range $prates)" "$(range $ratios)" "$(range $pratios)" "$(range $pstatus_rates)" "$(range $prsss)" "$(range $pcpus)" "$(range $pgcpus)")")
        fi
    done
    echo
    echo "whole-process wall time, $RUNS run(s) each (target: ratio >= 0.80, peak RSS <= 64 MB):"
    echo "| connections | recipients | smtp-source msg/s | herald msg/s | ratio | herald status msg/s | herald peak RSS MiB | herald CPU ms/msg | smtp-sink CPU ms/msg | herald context switches/msg | smtp-source context switches/msg |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${SUMMARY[@]}"
    if [ -n "$PG" ]; then
        echo
        echo "the same sends on PostgreSQL (same smtp-source runs; a fresh database per run):"
        echo "| connections | recipients | smtp-source msg/s | herald SQLite msg/s | herald PostgreSQL msg/s | ratio SQLite | ratio PostgreSQL | PostgreSQL status msg/s | herald peak RSS MiB | herald CPU ms/msg | postgres server CPU ms/msg |"
        echo "|---|---|---|---|---|---|---|---|---|---|---|"
        printf '%s\n' "${PG_SUMMARY[@]}"
    fi
fi

if [ "$INSTR" = 1 ]; then
    echo
    # Instructions of the whole process, all threads (callgrind's summary).
    counted() { # out-file → instructions
        sed -n 's/^summary: \([0-9]*\).*/\1/p' "$1" | tail -1
    }
    herald_instr() { # N → instructions
        fresh "$1"
        (
            cd "$WORK/run"
            HERALD__SENDER__CONCURRENCY=8 valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.herald.$1" \
                "$HERALD" send "$ISSUE" --live --yes >/dev/null 2>"$WORK/cg.err" || { cat "$WORK/cg.err" >&2; exit 1; }
        )
        [ -z "$KEEP" ] || cp "$WORK/cg.herald.$1" "$KEEP/"
        counted "$WORK/cg.herald.$1"
    }
    source_instr() { # M → instructions
        valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.source.$1" \
            smtp-source -d -s 8 -l "$SIZE" -m "$1" -f news@example.org -t reader@example.org 127.0.0.1:$PORT 2>/dev/null
        [ -z "$KEEP" ] || cp "$WORK/cg.source.$1" "$KEEP/"
        counted "$WORK/cg.source.$1"
    }
    h1=$(herald_instr 200)
    h2=$(herald_instr 2200)
    s1=$(source_instr 200)
    s2=$(source_instr 2200)
    py "
h=($h2-$h1)/2000; s=($s2-$s1)/2000
print(f'instructions per delivered message (callgrind, 8 connections, (I(2,200) - I(200)) / 2,000):')
print(f'  herald      {h:,.0f}   (whole process at 200: {$h1:,}, at 2,200: {$h2:,})')
print(f'  smtp-source {s:,.0f}   (whole process at 200: {$s1:,}, at 2,200: {$s2:,})')
print(f'  ratio       {h/s:.1f}x')"
fi

if [ "$DKIM" = 1 ]; then
    echo
    N=${DKIM_RECIPIENTS:-20000}
    base "$N" >/dev/null
    keydir="$WORK/keys"
    mkdir -p "$keydir"
    (cd "$keydir" && "$HERALD" dkim keygen --domain bench.example.net --selector rsa >/dev/null &&
        "$HERALD" dkim keygen --domain bench.example.net --selector ed --algorithm ed25519 >/dev/null)
    rsa_key=$(ls "$keydir"/dkim/*rsa*)
    ed_key=$(ls "$keydir"/dkim/*ed*)
    dk() { # algorithm key → env assignments
        echo HERALD__DKIM__DOMAIN=bench.example.net HERALD__DKIM__SELECTOR=$1 HERALD__DKIM__ALGORITHM=$2 HERALD__DKIM__PRIVATE_KEY_PATH=$3
    }
    echo "DKIM at 8 connections, $N recipients (whole process):"
    for variant in off rsa ed25519; do
        case $variant in
        off) extra=() ;;
        rsa) read -ra extra <<<"$(dk rsa rsa "$rsa_key")" ;;
        ed25519) read -ra extra <<<"$(dk ed ed25519 "$ed_key")" ;;
        esac
        rates=
        for run in $(seq 1 "$RUNS"); do
            read -r ht _ <<<"$(herald_run 8 "$N" "${extra[@]}")"
            rates+=" $(py "print(f'{$N/$ht:.0f}')")"
        done
        printf '  DKIM %-8s %s msg/s\n' "$variant" "$(range $rates)"
    done
fi
