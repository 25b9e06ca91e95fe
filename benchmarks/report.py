"""Markdown rendering of a benchmark run (the README's table comes from this)."""
from __future__ import annotations

from typing import Any


def _s(d: dict[str, Any], scale: float = 1.0, unit: str = "s", digits: str = ".3g") -> str:
    flag = " ⚠noisy" if d.get("noisy") else ""
    return f"{format(d['median'] * scale, digits)} {unit}{flag}"


def markdown(res: dict[str, Any]) -> str:
    n = res["rounds"]
    L = [f"# edgekit benchmarks, {res['date']}", "",
         f"Machine: {res['machine']}. Tools: " + ", ".join(f"{k} {v}" for k, v in res["tools"].items()) + ".",
         f"Each figure is the median of {n} alternating A/B runs unless noted; ⚠noisy marks a spread "
         "(max - min) / median over 20%.", ""]
    L += ["## 1. Convert to all six formats (end to end, separate processes)", "",
          "| model | edgekit convert (exports + checks) | raw tools chained (no checks) | speedup | peak RSS edgekit / raw |",
          "|---|---|---|---|---|"]
    for m, r in res["convert"].items():
        L.append(f"| {m} | {_s(r['edgekit_s'])} | {_s(r['raw_chain_s'])} | {r['speedup']:.2f}x | "
                 f"{r['edgekit_peak_mb']['median']:.0f} / {r['raw_peak_mb']['median']:.0f} MB |")
    L += ["", "Raw chain: a Keras/TFLiteConverter script, then `python -m tf2onnx.convert --saved-model` "
          "(two processes, TensorFlow imported twice). edgekit's peak is its largest process (the TensorFlow worker).", ""]
    L += ["## 2. ONNX export", "", "| model | edgekit in a warm process | tf2onnx CLI | speedup |", "|---|---|---|---|"]
    for m, r in res["onnx_export"].items():
        L.append(f"| {m} | {_s(r['in_process_s'])} | {_s(r['tf2onnx_cli_s'])} | {r['speedup']:.1f}x |")
    L += ["", "## 3. Validation cost per artifact (load + run + compare, warm workers, batch 2)", "",
          "| model | " + " | ".join(next(iter(res["validation"].values()))) + " |",
          "|---|" + "---|" * len(next(iter(res["validation"].values())))]
    for m, r in res["validation"].items():
        L.append(f"| {m} | " + " | ".join(_s(v, 1e3, "ms") for v in r.values()) + " |")
    rt = res["runtime"]
    c, p = rt["cold_start"], rt["per_call"]
    L += ["", "## 4. Runtime", "",
          "| figure | edgekit | baseline | ratio |", "|---|---|---|---|",
          f"| cold start, process start to first output (CNN) | `edgekit run` {_s(c['edgekit_run_s'])} | "
          f"TensorFlow script {_s(c['tensorflow_script_s'])} | {c['speedup']:.1f}x faster |",
          f"| per call, batch 1 (CNN, {p['calls_per_sample']} calls a sample) | predictor {_s(p['predictor_s'], 1e6, 'us')} | "
          f"bare `Interpreter.invoke` {_s(p['bare_invoke_s'], 1e6, 'us')} | overhead {p['overhead_us']:.1f} us "
          f"({p['overhead_ratio']:+.1%}) |", ""]
    L += ["## 5. Quantization (models trained 8 epochs on the built-in digits; accuracy on 359 held-out digits)", "",
          "| model | artifact | size vs float32 | LiteRT latency vs float32 | accuracy | drop (points) | SNR dB |",
          "|---|---|---|---|---|---|---|"]
    for m, r in res["quantization"].items():
        L.append(f"| {m} | float32 (Keras model) | 1.00 | 1.00 ({r['float32_latency_us']:.1f} us) | {r['model_accuracy']:.2f} | - | - |")
        for label, q in r["modes"].items():
            lat = "-" if q["litert_latency_ratio"] is None else f"{q['litert_latency_ratio']:.2f}"
            snr = "-" if q["snr_db"] is None else f"{q['snr_db']:.1f}"
            size = "-" if q["size_ratio"] is None else f"{q['size_ratio']:.2f}"
            L.append(f"| {m} | {label} | {size} | {lat} | {q['accuracy']:.2f} | {q['drop_points']:+.2f} | {snr} |")
    sc = res["scaling"]
    L += ["", "## 6. Scaling (one run each, same worker pool)", "",
          "| model | parameters | end to end | " + " | ".join(f"{f} convert" for f in next(iter(sc["params"].values()))["convert_s"]) + " |",
          "|---|---|---|" + "---|" * len(next(iter(sc["params"].values()))["convert_s"])]
    for m, r in sc["params"].items():
        L.append(f"| {m} | {r['params']:,} | {r['total_s']:.1f} s | "
                 + " | ".join("-" if v is None else f"{v:.2f} s" for v in r["convert_s"].values()) + " |")
    L += ["", "| CNN batch | end to end | " + " | ".join(f"{f} run" for f in next(iter(sc["batch"].values()))["latency_ms"]) + " |",
          "|---|---|" + "---|" * len(next(iter(sc["batch"].values()))["latency_ms"])]
    for b, r in sc["batch"].items():
        L.append(f"| {b} | {r['total_s']:.1f} s | " + " | ".join(f"{v:.2f} ms" for v in r["latency_ms"].values()) + " |")
    L += ["", f"Total benchmark time: {res['total_s']:.0f} s. Reproduce: `python -m benchmarks` from the repository root.", ""]
    return "\n".join(L)
