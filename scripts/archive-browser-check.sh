#!/usr/bin/env bash
# Real-browser check of the public archive: in a scratch installation, run
# `herald demo` (one live send to the outbox), start `herald serve` on a
# free loopback port, save the archive page (GET /issues) and the issue's
# web version (GET /issues/SLUG, with its link back to the archive), and run
# the same Chromium check as scripts/browser-check.sh on each: screenshots
# under screenshots/archive and screenshots/web-version, and failure on
# horizontal overflow.
#
# Usage: scripts/archive-browser-check.sh [WIDTH...]   (default: 375 640)
# Needs: Debian package `chromium`, Node.js >= 20, curl.
# Env: HERALD_BIN (default: $CARGO_TARGET_DIR or target, /debug/herald, built
#      if missing), CHROMIUM, SCREENSHOTS (default: screenshots).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
widths=("$@")
[ ${#widths[@]} -gt 0 ] || widths=(375 640)
bin=${HERALD_BIN:-${CARGO_TARGET_DIR:-target}/debug/herald}
shots=${SCREENSHOTS:-screenshots}
case $bin in /*) ;; *) bin=$root/$bin ;; esac
case $shots in /*) ;; *) shots=$root/$shots ;; esac

command -v curl >/dev/null || { echo "archive-browser-check: curl not found" >&2; exit 1; }
[ -x "$bin" ] || cargo build --quiet --bin herald

work=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
for v in $(env | sed -n 's/^\(HERALD__[^=]*\)=.*/\1/p'); do unset "$v"; done

cd "$work"
"$bin" demo >/dev/null
"$bin" serve --bind 127.0.0.1:0 >serve.out 2>serve.err &
server=$!
for _ in $(seq 50); do
    grep -q '^listening on ' serve.out 2>/dev/null && break
    sleep 0.1
done
base=$(sed -n 's/^listening on //p' serve.out)
[ -n "$base" ] || { echo "archive-browser-check: herald serve did not start" >&2; cat serve.err >&2; exit 1; }

mkdir -p archive web-version
curl -fsS "$base/issues" -o archive/index.html
slug=$(sed -n 's/.*href="\/issues\/\([a-z0-9-]*\)".*/\1/p' archive/index.html | head -n 1)
[ -n "$slug" ] || { echo "archive-browser-check: the archive lists no issue" >&2; exit 1; }
curl -fsS "$base/issues/$slug" -o web-version/index.html
grep -q 'href="/issues"' web-version/index.html || {
    echo "archive-browser-check: the web version does not link to the archive" >&2
    exit 1
}

cd "$root"
node_flags=()
node -e 'process.exit(typeof WebSocket === "undefined" ? 0 : 1)' && node_flags=(--experimental-websocket)
for page in archive web-version; do
    mkdir -p "$shots/$page"
    echo "-- $page"
    node "${node_flags[@]}" scripts/browser-check.mjs "$work/$page" "$shots/$page" "${widths[@]}"
done
