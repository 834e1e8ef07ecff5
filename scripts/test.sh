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
#   5. runs the integration suite (tests/cli) and the timing tests (the
#      shared rate of three senders among them) again against PostgreSQL: the
#      server at HERALD_TEST_POSTGRES_URL (default
#      postgres://postgres@127.0.0.1:5432/test) when one answers there,
#      else a throwaway server of its own (initdb in a temporary directory,
#      a free loopback port, run as a non-root user, stopped at the end;
#      Debian's postgresql package is installed when missing);
#   6. runs the headless-Chromium checks (the bundled issue and the MJML
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
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ] || ! command -v psql >/dev/null; then
    need postgresql "PostgreSQL (initdb, pg_ctl, psql) for the PostgreSQL run of the suite"
fi

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

# --- 4. the tests on SQLite ------------------------------------------------
cargo test --locked

# --- 5. the integration suite on PostgreSQL --------------------------------
pg_url=${HERALD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
if psql "$pg_url" -qAtc 'SELECT 1' >/dev/null 2>&1; then
    say "PostgreSQL run against $pg_url"
else
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/herald-pg.XXXXXX")
    pg_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_pg=()
    if [ "$(id -u)" = 0 ]; then
        # initdb refuses to run as root.
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$pg_dir"
        as_pg=(runuser -u postgres --)
    fi
    "${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
        -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >/dev/null
    trap '"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1; rm -rf "$pg_dir"' EXIT
    pg_url="postgres://postgres@127.0.0.1:$pg_port/postgres"
    say "no PostgreSQL at ${HERALD_TEST_POSTGRES_URL:-127.0.0.1:5432}: started a throwaway server at $pg_url"
fi
HERALD_TEST_BACKEND=postgres HERALD_TEST_POSTGRES_URL=$pg_url cargo test --locked --test cli
# The timing tests measure rates on a 2-core machine: one at a time, so that
# neither paces against the other's senders (the shared-rate test alone runs
# three of them and a PostgreSQL server).
HERALD_TEST_BACKEND=postgres HERALD_TEST_POSTGRES_URL=$pg_url cargo test --locked --test timing -- --test-threads=1

# --- 6. the browser checks -------------------------------------------------
echo "== browser: rendered issue"
bash scripts/browser-check.sh
echo "== browser: MJML design"
bash scripts/browser-check.sh tests/fixtures/design/newsletter.mjml
echo "== browser: unsubscribe page"
bash tests/browser/run.sh
echo "== browser: public archive"; bash scripts/archive-browser-check.sh
