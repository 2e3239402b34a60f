"""Run every benchmark module (or those named on the command line) and write one table.

  python -m benchmarks [--quick] [AREA ...]

Writes bench-results/bench.md and bench-results/bench.json (a run of chosen areas replaces only
their rows there; --quick rows say so in their notes). Each area runs in its own
process so peak-memory figures are per area: a result that reports none gets its area
process's peak (or its largest finished child process's, when that is larger).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

import benchmarks
from benchmarks.harness import Context, peak_rss_mb


def areas() -> list[str]:
    return sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))


def run_area(area: str, out_dir: Path, quick: bool) -> list[dict]:
    module = importlib.import_module(f"benchmarks.bench_{area}")
    ctx = Context(out_dir=out_dir, quick=quick)
    os.environ["FLIGHTDECK_HOME"] = str(ctx.home)
    results = module.run(ctx)
    for r in results:
        if r.peak_rss_mb is None:
            r.peak_rss_mb = peak_rss_mb(children=True)
    return [r.as_dict() for r in results]


def _previous_rows(out: Path) -> list[dict]:
    try:
        return json.loads((out / "bench.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []


def fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("areas", nargs="*", help=f"areas to run (default all: {', '.join(areas())})")
    ap.add_argument("--quick", action="store_true", help="small data, for a smoke run")
    ap.add_argument("--out", default="bench-results")
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args._child:
        print(json.dumps(run_area(args._child, out, args.quick)))
        return 0
    rows: list[dict] = []
    failures = []
    for area in args.areas or areas():
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "benchmarks", "--_child", area, "--out", str(out)] + (["--quick"] if args.quick else [])
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            failures.append(area)
            print(f"bench {area}: FAILED (exit {proc.returncode})", file=sys.stderr)
            continue
        rows += json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"bench {area}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    stamp = {"quick": args.quick, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    rows = [{**r, "run": stamp} for r in rows]
    ran = {a for a in (args.areas or areas()) if a not in failures}
    if args.areas:
        # A run of chosen areas replaces only their rows: the last full run's other areas stay.
        rows = [r for r in _previous_rows(out) if r["area"] not in ran] + rows
        rows.sort(key=lambda r: r["area"])  # stable: each area's rows keep their order
    (out / "bench.json").write_text(json.dumps(rows, indent=2))
    lines = ["| area | measurement | value | unit | baseline | baseline value | ratio | peak RSS MB | target | notes |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else ""
        notes = ("quick run; " if r.get("run", {}).get("quick") else "") + r["notes"]
        lines.append(f"| {r['area']} | {r['name']} | {fmt(r['value'])} | {r['unit']} | {r['baseline_name']} | "
                     f"{fmt(r['baseline_value'])} | {ratio} | {fmt(r['peak_rss_mb'])} | {r['target']} | {notes} |")
    (out / "bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
