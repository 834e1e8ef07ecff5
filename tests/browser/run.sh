#!/usr/bin/env bash
# Real-browser test of the unsubscribe link: starts `herald serve` on a
# loopback port with a throw-away database, lets headless Chromium (Debian's
# package, JavaScript off, phone width) open the page and click the button,
# then checks the database says unsubscribed and the server stops cleanly on
# SIGTERM without a token in its logs. Screenshots land in screenshots/
# (git-ignored). Exits non-zero on any failure.
#
# Needs: chromium (apt), node + npm (playwright-core is installed here from
# package-lock.json; it never downloads a browser).
#
#   bash tests/browser/run.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
here=tests/browser
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "browser test: installing chromium" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "browser test: $CHROMIUM not found (apt-get install chromium)" >&2
    exit 1
  fi
fi
command -v node >/dev/null || { echo "browser test: node is required" >&2; exit 1; }
if [ ! -d "$here/node_modules/playwright-core" ]; then
  (cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
fi

cargo build --quiet --bin herald --example unsubscribe_links
target=${CARGO_TARGET_DIR:-target}
herald="$target/debug/herald"
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

# Only this run's settings: nothing from the outer environment.
for var in $(env | sed -n 's/^\(HERALD[A-Z0-9_]*\)=.*/\1/p'); do unset "$var"; done
export HERALD__DATABASE__URL="sqlite://$tmp/herald.db"
export HERALD__UNSUBSCRIBE__SECRET="browser-test-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export HERALD__NEWSLETTER__NAME="The Herald Weekly"
export NO_COLOR=1

"$herald" init >/dev/null
"$herald" subscribers add ana.silva@example.org --name "Ana Silva" >/dev/null

"$herald" serve --bind 127.0.0.1:0 >"$tmp/serve.out" 2>"$tmp/serve.log" &
server_pid=$!
base=
for _ in $(seq 100); do
  # The background job may not have created the file yet.
  base=$(sed -n 's/^listening on //p' "$tmp/serve.out" 2>/dev/null || true)
  [ -n "$base" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$base" ]; then
  echo "browser test: herald serve did not start" >&2
  cat "$tmp/serve.log" >&2
  exit 1
fi

url=$(HERALD__HTTP__PUBLIC_BASE_URL="$base" "$links" --status active --limit 1)
token=${url##*/}
mkdir -p screenshots

failed=0
node "$here/unsubscribe.mjs" "$url" screenshots || failed=1

if "$herald" subscribers list --status unsubscribed --format csv | grep -q '^ana\.silva@example\.org,'; then
  echo "ok - the database has ana.silva@example.org unsubscribed"
else
  echo "FAIL - the database does not have ana.silva@example.org unsubscribed"
  failed=1
fi

kill -TERM "$server_pid"
if wait "$server_pid"; then
  echo "ok - herald serve stopped cleanly on SIGTERM"
else
  echo "FAIL - herald serve exited non-zero after SIGTERM"
  failed=1
fi
server_pid=
if grep -qF "$token" "$tmp/serve.log"; then
  echo "FAIL - the token appears in the server log"
  failed=1
else
  echo "ok - no token in the server log"
fi

if [ "$failed" = 0 ]; then
  echo "screenshots: screenshots/unsubscribe-page.png screenshots/unsubscribed-page.png"
  echo "browser: 1 passed, 0 failed"
else
  cat "$tmp/serve.log" >&2
  echo "browser: 0 passed, 1 failed"
  exit 1
fi
