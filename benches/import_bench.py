#!/usr/bin/env python3
"""Import benchmark: generate CSV files of 100,000 and 1,000,000 subscribers,
import each into a fresh database with the release binary, and print rows/s
and peak RSS. Memory must not grow with the file; target >= 100,000 rows/s.

Usage: python3 benches/import_bench.py [--postgres URL] [--runs N] [ROWS ...]
(build with cargo build --release first)

With --postgres URL (a server's maintenance database, e.g.
postgres://postgres@127.0.0.1:5432/postgres), every size is also imported into
a fresh PostgreSQL database on that server (created and dropped with psql),
right after the SQLite import of the same file, and both are printed side by
side. --runs repeats each (size, backend) and prints the range.
"""

import os
import resource
import urllib.parse
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERALD = os.path.join(ROOT, "target", "release", "herald")
CITIES = ["Geneva", "Tripoli", "Kyiv", "Dakar", "Lima", "Osaka", "Accra", "Quito"]


def generate(path, rows):
    with open(path, "w") as f:
        f.write("email,name,city,language\n")
        for i in range(rows):
            f.write(f"person{i:07d}@example{i % 97}.org,Person {i},{CITIES[i % 8]},en\n")


def peak_rss_kib(before):
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return after if after > before else before


def psql(server, sql):
    subprocess.run(["psql", server, "-qAtc", sql], check=True, capture_output=True)


def fresh_postgres(server, name):
    """A fresh database `name` on the server; returns its URL."""
    psql(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    psql(server, f"CREATE DATABASE {name}")
    return urllib.parse.urlparse(server)._replace(path="/" + name).geturl()


def run(rows, workdir, backend="sqlite", server=None, attempt=0):
    csv_path = os.path.join(workdir, f"subs-{rows}.csv")
    if not os.path.exists(csv_path):
        generate(csv_path, rows)
    size_mb = os.path.getsize(csv_path) / 1e6
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD")}
    if backend == "postgres":
        env["HERALD__DATABASE__URL"] = fresh_postgres(server, "herald_import_bench")
    else:
        db = os.path.join(workdir, f"bench-{rows}-{attempt}.db")
        env["HERALD__DATABASE__URL"] = f"sqlite://{db}"
    subprocess.run([HERALD, "init"], env=env, check=True, capture_output=True, cwd=workdir)
    # Measure in a fresh child so ru_maxrss is this import's alone.
    code = (
        "import resource,subprocess,sys,time;"
        "t=time.perf_counter();"
        "p=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
        "d=time.perf_counter()-t;"
        "print(p.returncode,d,resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
        "print(p.stdout.strip())"
    )
    out = subprocess.run([sys.executable, "-c", code, HERALD, "subscribers", "import", csv_path],
                         env=env, capture_output=True, text=True, cwd=workdir, check=True).stdout.splitlines()
    rc, secs, rss_kib = out[0].split()
    if rc != "0":
        sys.exit(f"import failed: {out}")
    secs = float(secs)
    print(f"{backend:>8} {rows:>9} rows ({size_mb:6.1f} MB CSV): {secs:6.2f} s, {rows / secs:>9,.0f} rows/s, "
          f"peak RSS {int(rss_kib) / 1024:6.1f} MiB   [{out[1]}]")
    if backend == "postgres":
        psql(server, "DROP DATABASE IF EXISTS herald_import_bench WITH (FORCE)")
    else:
        os.remove(db)
    return rows / secs, int(rss_kib)


def spread(values, fmt):
    lo, hi = min(values), max(values)
    return fmt(lo) if lo == hi else f"{fmt(lo)}–{fmt(hi)}"


def main():
    if not os.path.exists(HERALD):
        sys.exit("build first: cargo build --release")
    args = sys.argv[1:]
    server, runs = None, 1
    while args and args[0].startswith("--"):
        if args[0] == "--postgres":
            server, args = args[1], args[2:]
        elif args[0] == "--runs":
            runs, args = int(args[1]), args[2:]
        else:
            sys.exit(f"unknown option {args[0]}")
    sizes = [int(a) for a in args] or [100_000, 1_000_000]
    backends = ["sqlite"] + (["postgres"] if server else [])
    results = {}
    with tempfile.TemporaryDirectory() as d:
        for n in sizes:
            for attempt in range(runs):
                for backend in backends:
                    results.setdefault((backend, n), []).append(run(n, d, backend, server, attempt))
    print()
    print("| backend | rows | rows/s | peak RSS MiB |")
    print("|---|---|---|---|")
    for (backend, n), rs in results.items():
        print(f"| {backend} | {n:,} | {spread([r[0] for r in rs], lambda x: f'{x:,.0f}')} | "
              f"{spread([r[1] / 1024 for r in rs], lambda x: f'{x:.1f}')} |")
    for backend in backends:
        rate = min(r[0] for r in results[(backend, sizes[-1])])
        print(f"{backend}: target >= 100,000 rows/s at {sizes[-1]:,}: {'met' if rate >= 100_000 else 'NOT met'} "
              f"(slowest run {rate:,.0f}); listmonk's importer does ~10,000 rows/s")
        if len(sizes) > 1:
            growth = max(r[1] for r in results[(backend, sizes[-1])]) / min(r[1] for r in results[(backend, sizes[0])])
            print(f"{backend}: peak RSS growth from {sizes[0]:,} to {sizes[-1]:,} rows: x{growth:.2f} "
                  "(flat means it does not grow with the file)")


if __name__ == "__main__":
    main()
