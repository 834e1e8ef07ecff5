#!/usr/bin/env bash
# The whole test suite, setting itself up first:
#   1. checks the system tools up front (cargo, python3 with venv, openssl,
#      node >= 20 with npm, chromium, spamassassin) and installs the missing
#      ones with apt-get when run as root on Debian/Ubuntu, else names the packages
#      to install and stops before building anything;
#   2. checks the module graph (scripts/module-graph.py: no import cycles
#      between sibling or top-level modules; writes target/module-graph.dot);
#   3. creates (once, reused) a virtualenv of the pinned Python test tools in
#      tests/requirements.txt and puts it first on PATH, so the tests'
#      `python3` has aiosmtpd and dkimpy; nothing is installed into the
#      system Python;
#   4. runs `cargo test --locked` (unit tests; integration tests against a
#      real SQLite file, a real SMTP server over TCP and a real HTTP client;
#      interop with aiosmtpd, Python's `email` and dkimpy; the rate test);
#   5. runs the headless-Chromium checks (the bundled issue and the MJML
#      design fixture at 375 and 640 px; the unsubscribe page clicked at
#      phone width).
#
# Honours CARGO_TARGET_DIR. Env: HERALD_TEST_VENV (default
# $CARGO_TARGET_DIR/test-venv), HERALD_TEST_NO_INSTALL=1 (never apt-get;
# report what is missing instead), CHROMIUM (default: chromium on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
venv=${HERALD_TEST_VENV:-$target/test-venv}
requirements=$root/tests/requirements.txt

say() { echo "test.sh: $*" >&2; }

# --- 1. system tools -------------------------------------------------------
missing_pkgs=()
missing_what=()
need() { # need PACKAGE WHAT
    missing_pkgs+=("$1")
    missing_what+=("$2")
}

command -v cargo >/dev/null || {
    say "cargo not found: install Rust (https://rustup.rs) first"
    exit 1
}
if ! command -v python3 >/dev/null; then
    need python3 "python3"
    need python3-venv "python3's venv module"
elif [ ! -x "$venv/bin/python3" ] && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    # Debian's own python3 ships venv's pip bootstrap separately.
    need python3-venv "python3 -m venv (ensurepip is missing from $(command -v python3))"
fi
command -v openssl >/dev/null || need openssl "openssl (makes DKIM test keys)"
if ! command -v node >/dev/null; then
    need nodejs "node >= 20 (drives headless Chromium)"
elif ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
    say "node $(node --version) is too old: the browser checks need Node.js >= 20"
    exit 1
fi
command -v npm >/dev/null || need npm "npm (installs playwright-core for the browser test)"
chromium=${CHROMIUM:-chromium}
command -v "$chromium" >/dev/null || need chromium "chromium (headless browser checks)"
command -v spamassassin >/dev/null || need spamassassin "spamassassin (local-rules score of live copies)"

if ((${#missing_pkgs[@]})); then
    if [ "${HERALD_TEST_NO_INSTALL:-}" != 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing: ${missing_pkgs[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing_pkgs[@]}" >/dev/null
    else
        say "missing system tools:"
        for i in "${!missing_pkgs[@]}"; do
            say "  - ${missing_what[$i]}: package ${missing_pkgs[$i]}"
        done
        say "install them with: sudo apt-get install ${missing_pkgs[*]}"
        exit 1
    fi
fi

# --- 2. the module graph: no import cycles --------------------------------
python3 scripts/module-graph.py

# --- 3. the Python test tools, in a virtualenv of their own ----------------
stamp="$venv/.requirements"
want="$(python3 -c 'import sys; print(sys.version)' 2>/dev/null | head -1)
$(cat "$requirements")"
if [ ! -x "$venv/bin/python3" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "creating the Python test tools virtualenv in $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check \
        --require-virtualenv -r "$requirements"
    printf '%s' "$want" >"$stamp"
fi
"$venv/bin/python3" -c 'import aiosmtpd, dkim' || {
    say "the virtualenv $venv is broken; remove it and run again"
    exit 1
}
export PATH="$venv/bin:$PATH"
export VIRTUAL_ENV=$venv

# --- 4. and 5. the tests ---------------------------------------------------
cargo test --locked
echo "== browser: rendered issue"
bash scripts/browser-check.sh
echo "== browser: MJML design"
bash scripts/browser-check.sh tests/fixtures/design/newsletter.mjml
echo "== browser: unsubscribe page"
bash tests/browser/run.sh
echo "== browser: public archive"; bash scripts/archive-browser-check.sh
