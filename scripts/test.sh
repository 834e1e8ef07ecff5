#!/usr/bin/env bash
# The whole test suite: the Rust tests (unit, integration against real
# SQLite/SMTP/HTTP, interop with Python's aiosmtpd and dkimpy, the timing
# test), then the two real-browser checks in headless Chromium (the rendered
# issue at 375 and 640 px; the unsubscribe page clicked at phone width).
# Needs python3 with aiosmtpd and dkimpy, openssl, node, and Debian's
# chromium; `.ci/run` installs them.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --locked
echo "== browser: rendered issue"
bash scripts/browser-check.sh
echo "== browser: unsubscribe page"
bash tests/browser/run.sh
echo "== browser: public archive"; bash scripts/archive-browser-check.sh
