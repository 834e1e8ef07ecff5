#!/usr/bin/env bash
# Real-browser check of a rendered issue: render it with `herald issue
# render`, open index.html in headless Chromium as a 375 px phone and a
# 640 px desktop client, save a full-page screenshot of each under
# screenshots/ (git-ignored), and fail when the page is wider than the
# viewport (horizontal overflow).
#
# Usage: scripts/browser-check.sh [ISSUE] [WIDTH...]
#   ISSUE   a TOML issue or an .mjml design; default:
#           issues/2018-12-14-migration-news.toml
#   WIDTH   default: 375 640
# Needs: Debian package `chromium`, and Node.js >= 20 (no npm packages).
# Env: HERALD_BIN (default: $CARGO_TARGET_DIR/debug/herald, else
#      target/debug/herald; built first),
#      CHROMIUM (default: chromium), SCREENSHOTS (default: screenshots),
#      TILES=N (also save N px tall slices of each page).
# Exit 0: no overflow at any width; 1: overflow or a failed step.
set -euo pipefail

cd "$(dirname "$0")/.."
issue=${1:-issues/2018-12-14-migration-news.toml}
[ $# -gt 0 ] && shift
widths=("$@")
[ ${#widths[@]} -gt 0 ] || widths=(375 640)
bin=${HERALD_BIN:-${CARGO_TARGET_DIR:-target}/debug/herald}
shots=${SCREENSHOTS:-screenshots}

command -v "${CHROMIUM:-chromium}" >/dev/null || {
    echo "browser-check: ${CHROMIUM:-chromium} not found (apt-get install -y chromium)" >&2
    exit 1
}
command -v node >/dev/null || { echo "browser-check: node not found (apt-get install -y nodejs)" >&2; exit 1; }
[ -n "${HERALD_BIN:-}" ] || cargo build --quiet --bin herald

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$shots"
"$bin" issue render "$issue" --out "$work" >/dev/null

node_flags=()
node -e 'process.exit(typeof WebSocket === "undefined" ? 0 : 1)' && node_flags=(--experimental-websocket)
node "${node_flags[@]}" scripts/browser-check.mjs "$work" "$shots" "${widths[@]}"
