"""edgekit check on an unchanged project: the cached run against the first (full) run.

    python -m benchmarks.check_cache [--rounds 3]

Each round checks examples/ci-project into a fresh output directory (everything converted),
then again into the same directory (nothing changed: nothing converted). Both are whole
CLI processes, as CI runs them. Writes benchmarks/results/<date>-check.md and .json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.__main__ import machine

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "examples" / "ci-project"
RESULTS = Path(__file__).resolve().parent / "results"


def check(out: Path) -> tuple[float, dict]:
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", "from edgekit.cli import main; main()", "check", str(PROJECT),
                        "--out", str(out), "-q"], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"edgekit check failed ({p.returncode}): {p.stderr[-500:]}")
    return wall, json.loads((out / "report.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    first, cached = [], []
    for _ in range(args.rounds):
        d = Path(tempfile.mkdtemp(prefix="edgekit-bench-check-"))
        try:
            w1, r1 = check(d)
            w2, r2 = check(d)
            assert not any(m["cached"] for m in r1["models"]) and all(m["cached"] for m in r2["models"])
            first.append(w1)
            cached.append(w2)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    f, c = statistics.median(first), statistics.median(cached)
    date = dt.date.today().isoformat()
    data = {"date": date, "machine": machine(), "rounds": args.rounds, "first_s": first, "cached_s": cached,
            "ratio": f / c}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{date}-check.json").write_text(json.dumps(data, indent=2) + "\n")
    md = [f"# edgekit check caching ({date})", "", f"Machine: {machine()}.",
          f"`edgekit check examples/ci-project` (2 models, 13 cases), whole CLI process, median of {args.rounds}.", "",
          "| run | wall time |", "|---|---|", f"| first (everything converted) | {f:.1f} s |",
          f"| again, nothing changed (cached) | {c:.1f} s |", "", f"The unchanged run is {f / c:.1f}x faster.", ""]
    (RESULTS / f"{date}-check.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
