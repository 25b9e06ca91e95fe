"""Cost of checking artifacts on an emulated ARM64 device: one persistent emulated worker fed
every artifact, against a fresh emulated process per artifact.

    python -m benchmarks.arm [--rounds 3] [--cpu cortex-a76]

Writes benchmarks/results/<date>-arm.md and .json. Needs 'edgekit devices setup arm64'.
The artifacts are the self-test's float and int8 TFLite and ONNX files, each run on the
same inputs with 5 timed repeats, as a validation does. Rounds alternate the two ways.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.__main__ import machine
from edgekit.devices.arm import find_env, guest_worker
from edgekit.devices.selftest import CASES, HERE
from edgekit.worker import Worker

RESULTS = Path(__file__).resolve().parent / "results"


def _worker(env_dir: Path, cpu: str) -> Worker:
    return guest_worker(env_dir, cpu, f"bench {cpu}")


def persistent(env_dir: Path, cpu: str, artifacts: list[tuple[str, str]], feeds: dict) -> list[float]:
    """Seconds per artifact through one worker; the first includes the worker's start."""
    w = _worker(env_dir, cpu)
    out = []
    try:
        for path, runtime in artifacts:
            t = time.perf_counter()
            w.call("edgekit.tasks:run_artifact", runtime, path, feeds, 5, timeout=600)
            out.append(time.perf_counter() - t)
    finally:
        w.close()
    return out


def fresh(env_dir: Path, cpu: str, artifacts: list[tuple[str, str]], feeds: dict) -> list[float]:
    """Seconds per artifact, each in a new emulated process (start, import, run, exit)."""
    out = []
    for path, runtime in artifacts:
        t = time.perf_counter()
        w = _worker(env_dir, cpu)
        try:
            w.call("edgekit.tasks:run_artifact", runtime, path, feeds, 5, timeout=600)
        finally:
            w.close()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cpu", default="cortex-a76")
    args = ap.parse_args()
    env_dir, why = find_env()
    if env_dir is None:
        raise SystemExit(f"benchmarks.arm: {why}")
    with np.load(HERE / "inputs.npz") as z:
        feeds = {k: z[k] for k in z.files}
    artifacts = [(str(HERE / f), rt) for f, rt, _ in CASES] * 2  # 8 artifacts, as a 4-format run on 2 models
    pers, frsh = [], []
    for _ in range(args.rounds):
        pers.append(persistent(env_dir, args.cpu, artifacts, feeds))
        frsh.append(fresh(env_dir, args.cpu, artifacts, feeds))
    first = statistics.median(r[0] for r in pers)
    after = statistics.median(statistics.mean(r[1:]) for r in pers)
    fresh_each = statistics.median(statistics.mean(r) for r in frsh)
    total_p = statistics.median(sum(r) for r in pers)
    total_f = statistics.median(sum(r) for r in frsh)
    ratio = fresh_each / after
    date = dt.date.today().isoformat()
    data = {"date": date, "machine": machine(), "cpu": args.cpu, "rounds": args.rounds, "artifacts": len(artifacts),
            "persistent_first_s": first, "persistent_per_artifact_after_first_s": after,
            "fresh_per_artifact_s": fresh_each, "ratio_fresh_over_persistent": ratio,
            "total_persistent_s": total_p, "total_fresh_s": total_f,
            "raw": {"persistent": pers, "fresh": frsh}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{date}-arm.json").write_text(json.dumps(data, indent=2) + "\n")
    md = [f"# ARM64 validation cost ({date})", "", f"Machine: {machine()}. Emulated CPU: {args.cpu} (qemu user mode).",
          f"{len(artifacts)} artifacts (the self-test's float/int8 TFLite and ONNX files, twice), 5 timed runs each; "
          f"median of {args.rounds} alternating rounds.", "",
          "| | per artifact | all artifacts |", "|---|---|---|",
          f"| persistent worker, first artifact (includes start-up) | {first:.2f} s | |",
          f"| persistent worker, each later artifact | {after:.3f} s | {total_p:.1f} s |",
          f"| fresh emulated process per artifact | {fresh_each:.2f} s | {total_f:.1f} s |",
          "", f"Per artifact after the first, the persistent worker is **{ratio:.1f}x** cheaper (target: >= 3x).", ""]
    (RESULTS / f"{date}-arm.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
