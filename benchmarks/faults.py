"""Fault injection: how often does a verdict catch a real bug, and how often does it fail a
correct file? Writes benchmarks/results/<date>-faults.md and .json.

    python -m benchmarks.faults [--quick] [--no-efficientnet]

Correct artifacts: the raw tools' (``model.export`` + TFLiteConverter, tf2onnx) and edgekit's
own, of the guide models and a few more architectures, on standard-normal inputs (edgekit's
default; ill-conditioned for some models) and on in-distribution inputs. Broken artifacts: the
same models with one real bug each (benchmarks/fault_inject.py), written by the same raw tools,
plus int8 QDQ ONNX files with one weight's zero point off by one step. Every artifact goes
through ``edgekit compare`` (its policy), and its raw outputs are judged by fixed-tolerance
policies on the same inputs.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
MODELS_PY = str(Path(__file__).resolve().parent / "fault_models.py")


def _np_allclose(ref: np.ndarray, out: np.ndarray) -> bool:
    return bool(np.allclose(out, ref, atol=1e-5, rtol=1e-5))


def _abs_1e4(ref: np.ndarray, out: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(out) == np.isfinite(ref)) and np.nanmax(np.abs(out - ref)) <= 1e-4)


def _onnx2tf(ref: np.ndarray, out: np.ndarray) -> bool:
    a, b = ref.astype(np.float64).ravel(), out.astype(np.float64).ravel()
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) if np.linalg.norm(a) * np.linalg.norm(b) else 1.0
    return bool(np.max(np.abs(a - b)) <= max(5e-2, 2e-3 * np.max(np.abs(a))) and cos >= 0.999)


FIXED: dict[str, Callable[[np.ndarray, np.ndarray], bool]] = {
    "atol=rtol=1e-5 (np.allclose)": _np_allclose,
    "atol 1e-4 absolute": _abs_1e4,
    "onnx2tf default (max(5e-2, 2e-3 max|ref|), cos 0.999)": _onnx2tf,
}
EDGEKIT = "edgekit (bound, or float64 truth)"

# name -> in-distribution input generator (None: standard normal already is its distribution)
IN_DIST: dict[str, Callable[[str, tuple[int, ...], np.random.Generator], np.ndarray] | None] = {
    "mlp": lambda n, s, r: r.uniform(0, 1, s), "cnn": lambda n, s, r: r.uniform(0, 1, s),
    "two_input": lambda n, s, r: r.uniform(0, 1, s) if n == "image" else r.standard_normal(s),
    "conv1d": None, "embedding": None, "pair": None, "gelu_mlp": None, "ill_conditioned": None,
    "efficientnet": lambda n, s, r: r.uniform(0, 255, s),
}
INT8_MODELS = ("mlp", "cnn")


def _inputs(spec: Any, gen: Callable | None, path: Path, batch: int, seed: int = 0) -> str:
    from edgekit.feeds import random_feeds

    feeds = random_feeds(spec.inputs, batch=batch, seed=seed)
    if gen is not None:
        rng = np.random.default_rng(seed + 1)
        feeds = {k: (gen(k, v.shape, rng).astype(v.dtype) if v.dtype.kind == "f" else v) for k, v in feeds.items()}
    np.savez(path, **feeds)
    return str(path)


def _judge(pool: Any, model: str, cases: list[dict[str, Any]], inputs: str, label: str,
           policy: str | None = None) -> list[dict[str, Any]]:
    """edgekit compare on every case, then the fixed policies on the same raw outputs."""
    from edgekit.compare_files import compare
    from edgekit.feeds import bind, load_arrays
    from edgekit.models.source import detect
    from edgekit.runtimes import RUNTIMES
    from edgekit.specs import ModelSpec

    runnable = [c for c in cases if "error" not in c]
    t0 = time.perf_counter()
    res = compare(model, [c["path"] for c in runnable], inputs=inputs, policy=policy, pool=pool)
    src = detect(model).to_json()
    spec = ModelSpec.from_json(pool.tf.call("edgekit.tasks:inspect_model", src, timeout=600))
    feeds = bind(load_arrays(inputs), spec.inputs)
    ref, _ = pool.tf.call("edgekit.tasks:reference", src, feeds, 0, timeout=600)
    out = []
    for c, row in zip(runnable, res.rows):
        rec = {**c, "inputs": label, "edgekit": row.status, "error": row.error, "notes": row.notes,
               "truth": res.feeds_info.get("truth", {})}
        comp = row.comparison
        if comp is not None and comp.outputs:
            o = comp.outputs[0]
            rec.update(max_abs=comp.max_abs, max_rel=comp.max_rel, truth_abs=o.truth_abs, snr_db=comp.min_snr_db,
                       keras_truth_abs=o.keras_truth_abs, judged_by=o.judged_by)
        rec["ill_conditioned"] = any(rec["truth"].get("ill_conditioned", {}).values())
        if row.status != "error":
            b = res.bindings[c["path"]]
            worker = pool.tf if RUNTIMES[row.runtime].worker == "tf" else pool.rt
            got = worker.call("edgekit.tasks:run_artifact", row.runtime, c["path"],
                              {a: feeds[m] for a, m in b["inputs"].items()}, 0, {}, timeout=600)["outputs"]
            got = {b["outputs"][k]: np.asarray(v, np.float64) for k, v in got.items()}
            rec["fixed"] = {p: all(fn(np.asarray(ref[k], np.float64), got[k]) for k in ref) for p, fn in FIXED.items()}
        out.append(rec)
    print(f"  {label}: {len(runnable)} artifacts judged in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return out


def run_model(pool: Any, name: str, work: Path, bugs: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every case of one base model, and the cost of its float64 twin in a convert run."""
    from edgekit.models.source import detect
    from edgekit.pipeline import convert
    from edgekit.specs import ModelSpec

    model = f"{MODELS_PY}:{name}"
    d = work / name
    t0 = time.perf_counter()
    cases = pool.tf.call("benchmarks.fault_inject:make_cases", MODELS_PY, name, str(d / "raw"), ["tflite", "onnx"],
                         timeout=1200) if bugs else \
        pool.tf.call("tests.helpers_raw:export_raw", MODELS_PY, name, str(d / "raw"), ["tflite", "onnx"], timeout=1200)
    if not bugs:
        cases = [{"bug": None, "format": f, "path": p} for f, p in cases.items()]
    export_s = time.perf_counter() - t0
    spec = ModelSpec.from_json(pool.tf.call("edgekit.tasks:inspect_model", detect(model).to_json(), timeout=600))
    default = _inputs(spec, None, d / "default.npz", batch=2)
    conv = convert(model, d / "edgekit", formats="tflite,onnx", inputs=default, pool=pool)
    truth = conv.feeds_info["truth"]
    cost = {"model": name, "truth_s": truth.get("seconds"), "run_s": conv.elapsed_s, "twin": truth.get("available"),
            "reason": truth.get("reason"), "raw_export_s": export_s}
    cases += [{"bug": None, "format": f"edgekit {r.format}", "path": str(d / "edgekit" / r.filename)}
              for r in conv.rows if r.status != "error"]
    records = _judge(pool, model, cases, default, "standard normal")
    gen = IN_DIST.get(name)
    if gen is not None:
        indist = _inputs(spec, gen, d / "indist.npz", batch=8)
        records += _judge(pool, model, [c for c in cases if c["bug"] is None], indist, "in-distribution")
    if bugs and name in INT8_MODELS:
        records += _int8(pool, model, spec, gen, d)
    for r in records:
        r["model"] = name
    return records, cost


def _int8(pool: Any, model: str, spec: Any, gen: Callable | None, d: Path) -> list[dict[str, Any]]:
    """QDQ int8 ONNX (edgekit's static quantization, calibrated in distribution) and a copy
    with one weight's zero point off by one step, judged with the int8 policy."""
    from edgekit.pipeline import convert

    cal = _inputs(spec, gen, d / "calib.npz", batch=64, seed=5)
    conv = convert(model, d / "int8", formats="onnx", onnx_quantize="static", calibration=cal, pool=pool)
    qrow = next(r for r in conv.rows if r.recipe is not None)
    good = str(d / "int8" / qrow.filename)
    bad = pool.rt.call("benchmarks.fault_inject:corrupt_zero_point", good, str(d / "int8" / "zp_bug.onnx"), timeout=600)
    cases = [{"bug": None, "format": "edgekit onnx int8", "path": good},
             {"bug": "int8 zero point off by one step", "format": "onnx int8", "path": bad}]
    return _judge(pool, model, cases, _inputs(spec, gen, d / "int8_check.npz", batch=32, seed=9), "in-distribution",
                  policy="int8")


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """False alarms on correct artifacts and misses on broken ones, per policy and bug kind."""
    judged = [r for r in records if r["edgekit"] != "error"]
    policies = [EDGEKIT, *FIXED]

    def failed(r: dict[str, Any], p: str) -> bool:
        return r["edgekit"] == "mismatch" if p == EDGEKIT else not r["fixed"][p]

    correct = [r for r in judged if r["bug"] is None]
    # A bug on ill-conditioned inputs can move the output by less than Keras float32's own
    # rounding error there: no float32 check can see it. Those cases are counted apart.
    broken = [r for r in judged if r["bug"] is not None and not r["ill_conditioned"]]
    blind = [r for r in judged if r["bug"] is not None and r["ill_conditioned"]]
    kinds = sorted({r["bug"] for r in broken})
    out: dict[str, Any] = {"correct": len(correct), "broken": len(broken), "errors": len(records) - len(judged),
                           "ill_conditioned_broken": len(blind), "policies": {}}
    for p in policies:
        fa = [r for r in correct if failed(r, p)]
        missed = [r for r in broken if not failed(r, p)]
        per_kind = {k: sum(1 for r in missed if r["bug"] == k) for k in kinds}
        out["policies"][p] = {
            "false_alarms": len(fa), "false_alarm_rate": len(fa) / max(1, len(correct)),
            "misses": len(missed), "miss_rate": len(missed) / max(1, len(broken)),
            "kinds_missed": [k for k, n in per_kind.items() if n],
            "per_kind": {k: [per_kind[k], sum(1 for r in broken if r["bug"] == k)] for k in kinds},
            "false_alarm_cases": [f"{r['model']} {r['format']} ({r['inputs']})" for r in fa],
            "missed_cases": [f"{r['model']} {r['format']}: {r['bug']}" for r in missed],
            "ill_conditioned_missed": [f"{r['model']} {r['format']}: {r['bug']}" for r in blind if not failed(r, p)],
        }
    return out


def markdown(summary: dict[str, Any], costs: list[dict[str, Any]], elapsed: float) -> str:
    pol = summary["policies"]
    lines = [f"# Fault injection: detection and false-alarm rates ({dt.date.today()})", "",
             f"{summary['correct']} correct artifacts, {summary['broken']} broken ones "
             f"on well-conditioned inputs, plus {summary['ill_conditioned_broken']} broken ones on ill-conditioned "
             f"inputs, counted apart ({summary['errors']} that no runtime could load are left out); "
             f"{elapsed:.0f} s in all.", "",
             "| policy | false alarms (correct files failed) | misses (bugs passed) | bug kinds missed |",
             "|---|---|---|---|"]
    for p, s in pol.items():
        lines.append(f"| {p} | {s['false_alarms']}/{summary['correct']} ({s['false_alarm_rate']:.0%}) | "
                     f"{s['misses']}/{summary['broken']} ({s['miss_rate']:.0%}) | {', '.join(s['kinds_missed']) or 'none'} |")
    kinds = list(next(iter(pol.values()))["per_kind"])
    lines += ["", "Missed / instances per bug kind:", "", "| bug kind | " + " | ".join(pol) + " |",
              "|---|" + "---|" * len(pol)]
    for k in kinds:
        lines.append(f"| {k} | " + " | ".join(f"{pol[p]['per_kind'][k][0]}/{pol[p]['per_kind'][k][1]}" for p in pol) + " |")
    lines += ["", f"edgekit false alarms: {', '.join(pol[EDGEKIT]['false_alarm_cases']) or 'none'}",
              f"edgekit misses: {', '.join(pol[EDGEKIT]['missed_cases']) or 'none'}",
              "", "Broken files on ill-conditioned inputs (Keras float32 itself far from the float64 result), "
              "passed by each policy:", ""]
    lines += [f"- {p}: {len(s['ill_conditioned_missed'])}/{summary['ill_conditioned_broken']} "
              f"({', '.join(s['ill_conditioned_missed']) or 'none'})" for p, s in pol.items()]
    lines += ["",
              "Float64 twin cost (inside `edgekit convert --to tflite,onnx`):", "",
              "| model | twin | twin s | run s | share |", "|---|---|---|---|---|"]
    for c in costs:
        share = f"{c['truth_s'] / c['run_s']:.0%}" if c["truth_s"] and c["run_s"] else "-"
        twin = "yes" if c["twin"] else f"no: {c['reason']}"
        lines.append(f"| {c['model']} | {twin} | {c['truth_s'] or 0:.2f} | {c['run_s']:.1f} | {share} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    from edgekit.worker import WorkerPool

    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="mlp, cnn and the ill-conditioned CNN only")
    ap.add_argument("--no-efficientnet", action="store_true")
    args = ap.parse_args()
    names = ["mlp", "cnn", "ill_conditioned"] if args.quick else \
        ["mlp", "cnn", "two_input", "conv1d", "embedding", "pair", "gelu_mlp", "ill_conditioned"]
    t0 = time.perf_counter()
    records, costs = [], []
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}
    with WorkerPool(env=env) as pool, tempfile.TemporaryDirectory(prefix="edgekit-faults-") as work:
        for name in names + ([] if args.no_efficientnet or args.quick else ["efficientnet"]):
            print(f"{name}:", file=sys.stderr)
            rec, cost = run_model(pool, name, Path(work), bugs=name != "efficientnet")
            records += rec
            costs.append(cost)
    elapsed = time.perf_counter() - t0
    summary = summarize(records)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"{dt.date.today()}-faults"
    text = markdown(summary, costs, elapsed)
    stem.with_suffix(".md").write_text(text)
    stem.with_suffix(".json").write_text(json.dumps({"summary": summary, "costs": costs, "records": records},
                                                    indent=1, default=str))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
