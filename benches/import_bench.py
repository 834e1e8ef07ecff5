#!/usr/bin/env python3
"""Import benchmark: generate CSV files of 100,000 and 1,000,000 subscribers,
import each into a fresh database with the release binary, and print rows/s
and peak RSS. Memory must not grow with the file; target >= 100,000 rows/s.

Usage: python3 benches/import_bench.py [ROWS ...]   (build with cargo build --release first)
"""

import os
import resource
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


def run(rows, workdir):
    csv_path = os.path.join(workdir, f"subs-{rows}.csv")
    generate(csv_path, rows)
    size_mb = os.path.getsize(csv_path) / 1e6
    db = os.path.join(workdir, f"bench-{rows}.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD")}
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
    print(f"{rows:>9} rows ({size_mb:6.1f} MB CSV): {secs:6.2f} s, {rows / secs:>9,.0f} rows/s, "
          f"peak RSS {int(rss_kib) / 1024:6.1f} MiB   [{out[1]}]")
    return rows / secs, int(rss_kib)


def main():
    if not os.path.exists(HERALD):
        sys.exit("build first: cargo build --release")
    sizes = [int(a) for a in sys.argv[1:]] or [100_000, 1_000_000]
    with tempfile.TemporaryDirectory() as d:
        results = [run(n, d) for n in sizes]
    rate = results[-1][0]
    print(f"target >= 100,000 rows/s: {'met' if rate >= 100_000 else 'NOT met'} ({rate:,.0f}); "
          f"listmonk's importer does ~10,000 rows/s")
    if len(results) > 1:
        growth = results[-1][1] / results[0][1]
        print(f"peak RSS growth from {sizes[0]:,} to {sizes[-1]:,} rows: x{growth:.2f} (flat means it does not grow with the file)")


if __name__ == "__main__":
    main()
