"""Run every benchmark and write benchmarks/results/<date>.md and .json.

    python -m benchmarks [--rounds 3] [--quick]

Each figure is a ratio against the raw tool run in the same session, alternating A/B runs,
median of ``--rounds``; a figure whose spread (max - min) / median exceeds 20% is flagged.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import Samples, alternate, python, run_process

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
EDGEKIT = [python(), "-c", "from edgekit.cli import main; main()"]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {platform.system()} {platform.machine()}, Python {platform.python_version()}"


def fig(s: Samples, unit: str = "s", scale: float = 1.0) -> str:
    flag = " (noisy)" if s.noisy else ""
    return f"{s.median * scale:.3g} {unit}{flag}"


def bench_convert(models: dict[str, str], work: Path, rounds: int) -> dict[str, Any]:
    """1. All six formats: edgekit convert (with checks) vs the raw tools chained."""
    out: dict[str, Any] = {}
    for name, path in models.items():
        e_mem, r_mem = Samples(), Samples()

        def edgekit() -> float:
            d = work / f"ek_{name}"
            shutil.rmtree(d, ignore_errors=True)
            wall, mem, _ = run_process([*EDGEKIT, "convert", path, "--out", str(d), "-q"])
            e_mem.add(mem)
            return wall

        def raw() -> float:
            d = work / f"raw_{name}"
            shutil.rmtree(d, ignore_errors=True)
            w1, m1, _ = run_process([python(), str(ROOT / "benchmarks" / "raw_chain.py"), path, str(d)])
            w2, m2, _ = run_process([python(), "-m", "tf2onnx.convert", "--saved-model", str(d / "saved_model"),
                                     "--output", str(d / "model.onnx"), "--opset", "17"])
            r_mem.add(max(m1, m2))
            return w1 + w2

        se, sr = alternate(edgekit, raw, rounds)
        out[name] = {"edgekit_s": se.to_json(), "raw_chain_s": sr.to_json(), "speedup": sr.median / se.median,
                     "edgekit_peak_mb": e_mem.to_json(), "raw_peak_mb": r_mem.to_json(),
                     "note": "edgekit also runs and compares every artifact; the raw chain checks nothing"}
        print(f"  convert {name}: edgekit {fig(se)} vs raw chain {fig(sr)} -> {sr.median / se.median:.2f}x", flush=True)
    return out


def bench_onnx(models: dict[str, str], pool: Any, work: Path, rounds: int) -> dict[str, Any]:
    """2. ONNX export in a warm process vs the tf2onnx CLI on a SavedModel."""
    from edgekit.models.source import detect

    out = {}
    for name, path in models.items():
        src = detect(path).to_json()
        pool.tf.call("edgekit.tasks:inspect_model", src)
        sm = work / f"raw_{name}" / "saved_model"

        def inproc() -> float:
            t0 = time.perf_counter()
            pool.tf.call("edgekit.tasks:export", src, "onnx", str(work / f"{name}_ip.onnx"), {"opset": 17}, str(work))
            return time.perf_counter() - t0

        def cli() -> float:
            return run_process([python(), "-m", "tf2onnx.convert", "--saved-model", str(sm), "--output",
                                str(work / f"{name}_cli.onnx"), "--opset", "17"])[0]

        si, sc = alternate(inproc, cli, rounds)
        out[name] = {"in_process_s": si.to_json(), "tf2onnx_cli_s": sc.to_json(), "speedup": sc.median / si.median}
        print(f"  onnx {name}: in-process {fig(si)} vs tf2onnx CLI {fig(sc)} -> {sc.median / si.median:.1f}x", flush=True)
    return out


def bench_validation(models: dict[str, str], pool: Any, work: Path, rounds: int) -> dict[str, Any]:
    """3. What checking one artifact costs: load + run + compare, per runtime, warm worker."""
    from edgekit.feeds import random_feeds
    from edgekit.specs import ModelSpec
    from edgekit.models.source import detect
    from edgekit.validate import compare, default_tolerance

    out: dict[str, Any] = {}
    for name, path in models.items():
        d = work / f"ek_{name}"
        src = detect(path).to_json()
        spec = ModelSpec.from_json(pool.tf.call("edgekit.tasks:inspect_model", src))
        feeds = random_feeds(spec.inputs, batch=2)
        ref, _ = pool.tf.call("edgekit.tasks:reference", src, feeds, 0)
        out[name] = {}
        for fmt, runtime, worker in [("saved_model", "tf-savedmodel", pool.tf), ("model.keras", "keras", pool.tf),
                                     ("model.tflite", "litert", pool.rt), ("model.onnx", "onnxruntime", pool.rt)]:
            s = Samples()
            for _ in range(rounds):
                t0 = time.perf_counter()
                res = worker.call("edgekit.tasks:run_artifact", runtime, str(d / fmt), feeds, 0)
                compare(ref, res["outputs"], default_tolerance("float32"))
                s.add(time.perf_counter() - t0)
            out[name][runtime] = s.to_json()
            print(f"  validate {name} {runtime}: {fig(s, 'ms', 1e3)}", flush=True)
    return out


TF_COLD = """
import sys, numpy as np, tensorflow as tf
it = tf.lite.Interpreter(model_path=sys.argv[1]); it.allocate_tensors()
d = it.get_input_details()[0]; it.set_tensor(d["index"], np.load(sys.argv[2]).astype(d["dtype"]))
it.invoke(); print(it.get_tensor(it.get_output_details()[0]["index"]).argmax(axis=1))
"""


def bench_runtime(tflite_cnn: str, work: Path, rounds: int) -> dict[str, Any]:
    """4. Cold start of edgekit run vs a TensorFlow script; predictor overhead vs bare invoke."""
    x = work / "x_cnn.npy"
    np.save(x, np.random.default_rng(0).random((1, 28, 28, 1), dtype=np.float32))
    script = work / "tf_cold.py"
    script.write_text(TF_COLD)
    cold_ek, cold_tf = alternate(lambda: run_process([*EDGEKIT, "run", tflite_cnn, "-i", str(x)])[0],
                                 lambda: run_process([python(), str(script), tflite_cnn, str(x)])[0], rounds)
    print(f"  cold start: edgekit run {fig(cold_ek)} vs TF script {fig(cold_tf)} -> {cold_tf.median / cold_ek.median:.1f}x", flush=True)

    from ai_edge_litert.interpreter import Interpreter

    from edgekit.runtime import load

    feed = np.load(x)
    it = Interpreter(model_path=tflite_cnn)
    it.allocate_tensors()
    i_in, i_out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    pred = load(tflite_cnn)
    pred.predict(feed)
    n = 3000

    def bare() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            it.set_tensor(i_in, feed)
            it.invoke()
            it.get_tensor(i_out)
        return (time.perf_counter() - t0) / n

    def predictor() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            pred.predict(feed)
        return (time.perf_counter() - t0) / n

    sb, sp = alternate(bare, predictor, max(5, rounds))
    overhead = sp.median - sb.median
    print(f"  per call: bare invoke {fig(sb, 'us', 1e6)} vs predictor {fig(sp, 'us', 1e6)} "
          f"-> overhead {overhead * 1e6:.1f} us ({overhead / sb.median:+.1%})", flush=True)
    return {"cold_start": {"edgekit_run_s": cold_ek.to_json(), "tensorflow_script_s": cold_tf.to_json(),
                           "speedup": cold_tf.median / cold_ek.median},
            "per_call": {"bare_invoke_s": sb.to_json(), "predictor_s": sp.to_json(), "overhead_us": overhead * 1e6,
                         "overhead_ratio": overhead / sb.median, "calls_per_sample": n, "model": "guide CNN, batch 1"}}


def bench_quantization(pool: Any, work: Path) -> dict[str, Any]:
    """5. Per mode: size ratio, LiteRT latency ratio to float32, accuracy drop on digits."""
    from edgekit.pipeline import convert
    from edgekit.runtime import load

    out: dict[str, Any] = {}
    for name in ("mlp", "cnn"):
        path = work / f"trained_{name}.keras"
        info = pool.tf.call("edgekit.models.training:train_digits", str(path), name, 8, 0, timeout=900)
        d = work / f"q_{name}"
        r = convert(str(path), d, formats="tflite,onnx", quantize="dynamic,float16,int8,int16x8", onnx_quantize="dynamic,static",
                    calibration="digits", eval_data="digits", pool=pool)
        f32 = next(x for x in r.rows if x.format == "tflite" and x.recipe is None)
        shape = tuple(load(f32.path).inputs[0].shape[1:])
        x1 = np.random.default_rng(0).random((1, *shape), dtype=np.float32)

        def latency(p: str) -> float:
            pr = load(p)
            pr.predict(x1)
            ts = []
            for _ in range(7):
                t0 = time.perf_counter()
                for _ in range(300):
                    pr.predict(x1)
                ts.append((time.perf_counter() - t0) / 300)
            return statistics.median(ts)

        base = latency(f32.path)
        rows = {}
        for x in r.rows:
            if x.recipe is None or not x.path:
                continue
            lat = latency(x.path) if x.format == "tflite" else None
            ref_size = r.float_size(x.format)
            rows[x.label] = {"size_ratio": x.size / ref_size if ref_size else None, "status": x.status,
                             "accuracy": x.task["value"], "drop_points": x.task["drop"],
                             "snr_db": x.comparison.min_snr_db if x.comparison else None,
                             "litert_latency_ratio": lat / base if lat else None}
            print(f"  quantize {name} {x.label}: size {rows[x.label]['size_ratio']:.2f}x, drop {x.task['drop']:+.2f} pts"
                  + (f", latency {lat / base:.2f}x" if lat else ""), flush=True)
        out[name] = {"model_accuracy": r.eval_info["model"], "trained_test_accuracy": info["test_accuracy"],
                     "float32_latency_us": base * 1e6, "modes": rows}
    return out


def bench_scaling(pool: Any, work: Path, quick: bool = False) -> dict[str, Any]:
    """6. Conversion and validation time against parameter count and against batch size."""
    from edgekit.pipeline import convert

    bm = ROOT / "benchmarks" / "models.py"
    sizes = {}
    for fn in ("mlp_1e4", "mlp_1e5", "mlp_1e6") + (() if quick else ("mlp_1e7",)):
        r = convert(f"{bm}:{fn}", work / fn, pool=pool, repeats=3)
        sizes[fn] = {"params": r.spec.param_count, "total_s": r.elapsed_s,
                     "convert_s": {x.format: x.convert_s for x in r.rows},
                     "validate_ms": {x.format: x.latency["median_ms"] for x in r.rows if x.latency}}
        print(f"  scaling {fn}: {r.spec.param_count:,} params, {r.elapsed_s:.1f} s end to end; "
              + ", ".join(f"{k} {v:.1f}s" for k, v in sizes[fn]["convert_s"].items() if v), flush=True)
    batches = {}
    for b in (1, 8, 64, 256):
        r = convert("builtin:cnn", work / f"cnn_b{b}", pool=pool, batch_size=b, repeats=3)
        batches[b] = {"total_s": r.elapsed_s, "latency_ms": {x.format: x.latency["median_ms"] for x in r.rows if x.latency}}
        print(f"  scaling cnn batch {b}: {r.elapsed_s:.1f} s end to end", flush=True)
    return {"params": sizes, "batch": batches}


def write_report(res: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / res["date"]
    stem.with_suffix(".json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    from benchmarks.report import markdown

    md = stem.with_suffix(".md")
    md.write_text(markdown(res))
    return md


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1 round, skip the 10^7 scaling point")
    args = ap.parse_args()
    rounds = 1 if args.quick else args.rounds
    from edgekit.report.manifest import tool_versions
    from edgekit.worker import WorkerPool

    t_all = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="edgekit-bench-"))
    res: dict[str, Any] = {"date": dt.date.today().isoformat(), "machine": machine(), "tools": tool_versions(),
                           "rounds": rounds}
    try:
        with WorkerPool() as pool:
            models = {}
            for name in ("mlp", "cnn"):
                p = work / f"{name}.keras"
                pool.tf.call("edgekit.models.training:save_builtin", name, str(p))
                models[name] = str(p)
            print("1. convert: edgekit vs raw tools", flush=True)
            res["convert"] = bench_convert(models, work, rounds)
            print("2. ONNX export", flush=True)
            res["onnx_export"] = bench_onnx(models, pool, work, rounds)
            print("3. validation cost per artifact", flush=True)
            res["validation"] = bench_validation(models, pool, work, max(3, rounds))
            print("4. runtime", flush=True)
            res["runtime"] = bench_runtime(str(work / "ek_cnn" / "model.tflite"), work, rounds)
            print("5. quantization", flush=True)
            res["quantization"] = bench_quantization(pool, work)
            print("6. scaling", flush=True)
            res["scaling"] = bench_scaling(pool, work, args.quick)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["total_s"] = time.perf_counter() - t_all
    md = write_report(res)
    print(md.read_text())
    print(f"written: {md} and {md.with_suffix('.json')} ({res['total_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
