"""Quantization engines side by side, on the same models and inputs: each mode's size ratio,
SNR against the Keras model, task metric or top-1 agreement, XNNPACK latency, the engine
that made the file and how it fares on the reference kernels.

Models: the guide's CNN trained on the built-in digits (with its accuracy), MobileNetV2
(keras.applications, random weights), a GPT-2-class and a BERT-class keras-hub backbone
(small configs, random weights: their SNRs say nothing about language quality).

Engines: the LiteRT Quantizer (edgekit's default, one recipe per mode and the per-layer
``auto``), the TFLite converter's post-training quantization (``--quantize-engine
converter``), and ONNX Runtime's quantizers. Run: ``python -m benchmarks.quantization
[NAME ...]``; writes ``benchmarks/results/<date>-quantization.{json,md}``.
"""
from __future__ import annotations

import datetime
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve()


def gpt2_class() -> Any:
    import keras_hub

    return keras_hub.models.GPT2Backbone(vocabulary_size=2048, num_layers=2, num_heads=4, hidden_dim=128,
                                         intermediate_dim=512, max_sequence_length=64)


def bert_class() -> Any:
    import keras_hub

    return keras_hub.models.BertBackbone(vocabulary_size=2048, num_layers=2, num_heads=4, hidden_dim=128,
                                         intermediate_dim=512, max_sequence_length=64)


def mobilenet() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10)


MODELS = {
    "digits-cnn": {"calibration": "digits", "eval_data": "digits"},
    "mobilenet_v2": {"model": f"{HERE}:mobilenet", "calibration": "random"},
    "gpt2-class": {"model": f"{HERE}:gpt2_class", "calibration": "random"},
    "bert-class": {"model": f"{HERE}:bert_class", "calibration": "random"},
}
RUNS = [  # (label, settings): every run on the same model, the same seed and so the same inputs
    ("litert-quantizer", {"formats": "tflite,onnx", "quantize": "dynamic,float16,int8,int4,auto",
                          "onnx_quantize": "dynamic,static,int4"}),
    ("converter", {"formats": "tflite", "quantize": "dynamic,float16,int8", "quantize_engine": "converter"}),
    ("auto, XNNPACK only", {"formats": "tflite", "quantize": "auto", "kernels": "xnnpack"}),
]


def _row(model: str, run: str, r: Any, row: Any) -> dict[str, Any]:
    f32 = r.float_size(row.format)
    c = row.comparison
    ref = row.kernels.get("reference")
    return {
        "model": model, "run": run, "artifact": row.filename, "label": row.label, "status": str(row.status),
        "engine": row.meta.get("engine", "-" if row.recipe is None else "?"),
        "size": row.size, "ratio": (row.size / f32) if (row.size and f32 and row.recipe) else None,
        "snr_db": None if c is None else c.min_snr_db,
        "top1": None if c is None else next((o.top1_agreement for o in c.outputs if o.top1_agreement is not None), None),
        "task": row.task, "latency_ms": (row.latency or {}).get("median_ms"),
        "reference_kernels": None if ref is None else str(ref.status),
        "layers": row.meta.get("layers") if row.recipe is not None and row.recipe.approach.value == "mixed" else None,
        "error": row.error,
    }


def main(names: list[str]) -> None:
    from edgekit import convert
    from edgekit.worker import default_pool

    pool = default_pool()
    rows: list[dict[str, Any]] = []
    trained = None
    for name in names or list(MODELS):
        spec = dict(MODELS[name])
        if name == "digits-cnn":
            trained = trained or str(Path(tempfile.mkdtemp()) / "cnn.keras")
            pool.tf.call("edgekit.models.training:train_digits", trained, "cnn", 5, 0, 32, timeout=1200)
            spec["model"] = trained
        model = spec.pop("model")
        for run, settings in RUNS:
            out = tempfile.mkdtemp(prefix=f"edgekit-bench-{name}-")
            print(f"{name}: {run}", file=sys.stderr, flush=True)
            r = convert(model, out, pool=pool, **{"kernels": "xnnpack,reference", **spec, **settings})
            rows += [_row(name, run, r, x) for x in r.rows if x.recipe is not None or run == RUNS[0][0]]
    date = datetime.date.today().isoformat()
    res = ROOT / "benchmarks" / "results"
    (res / f"{date}-quantization.json").write_text(json.dumps(rows, indent=1, default=str))
    (res / f"{date}-quantization.md").write_text(render(rows, date))
    print(render(rows, date))


def _f(x: float | None, fmt: str) -> str:
    return "-" if x is None else ("inf" if x == float("inf") else format(x, fmt))


def render(rows: list[dict[str, Any]], date: str) -> str:
    import platform

    import ai_edge_litert
    import onnxruntime

    try:
        from importlib.metadata import version

        lq = version("litert-quantizer")
    except Exception:  # noqa: BLE001
        lq = "?"
    lines = [f"# Quantization engines, {date}", "",
             f"`python -m benchmarks.quantization` on {platform.machine()}, {platform.processor() or 'CPU'}; "
             f"litert-quantizer {lq}, ai-edge-litert {getattr(ai_edge_litert, '__version__', '?')}, "
             f"onnxruntime {onnxruntime.__version__}. SNR against the Keras model on the check inputs; "
             "latency on XNNPACK (one thread); 'ref kernels': the same file on LiteRT's reference kernels. "
             "Random-weight models are calibrated on random data (SNR only: it says nothing about task quality).", "",
             "| model | artifact | engine | x f32 | SNR dB | top-1 | accuracy drop | latency ms | ref kernels | result |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        drop = None if not r["task"] else r["task"].get("drop")
        lines.append(f"| {r['model']} | {r['artifact']} | {r['engine']} | {_f(r['ratio'], '.2f')} | "
                     f"{_f(r['snr_db'], '.1f')} | {_f(None if r['top1'] is None else 100 * r['top1'], '.0f')} | "
                     f"{_f(drop, '+.2f')} | {_f(r['latency_ms'], '.2f')} | {r['reference_kernels'] or '-'} | "
                     f"{r['status']}{(': ' + r['error'][:80]) if r['error'] else ''} |")
    auto = [r for r in rows if r["layers"]]
    if auto:
        lines += ["", "Per-layer precision chosen by `--quantize auto` (where the reference kernels are checked, "
                  "int4 is left out: they have no blockwise int4 kernel):", ""]
        for r in auto:
            lines.append(f"- {r['model']} ({r['run']}): "
                         + ", ".join(f"{x['layer']}={x['precision']}" for x in r["layers"]))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main(sys.argv[1:])
