"""Quantization engines side by side, on the same models and inputs: each mode's size ratio,
SNR against the Keras model, task metric or top-1 agreement, XNNPACK latency, the engine
that made the file and how it fares on the reference kernels.

Models: the guide's CNN trained on the built-in digits (with its accuracy), MobileNetV2
(keras.applications, random weights), a GPT-2-class keras-hub causal LM and a BERT-class backbone
(small configs; the decoder trained briefly on counting sequences, so that its next-token
distribution means something; the encoder with random weights).

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


def _counting(rng: Any, n: int, length: int = 64) -> dict[str, Any]:
    """Token sequences that count up from a random start by a step of 1 or 2 (mod the vocabulary)."""
    import numpy as np

    start, step = rng.integers(0, 2048, (n, 1)), rng.integers(1, 3, (n, 1))
    ids = ((start + step * np.arange(length)[None]) % 2048).astype("int32")
    return {"token_ids": ids, "padding_mask": np.ones_like(ids)}


def gpt2_class(workdir: str) -> dict[str, str]:
    """A GPT-2-class causal LM trained for 6 epochs (about 30 s) to continue counting
    sequences: 96% next-token accuracy, mean top probability ~0.9. A random-weight LM's next
    token distribution is nearly uniform, so any quantization keeps it (KL ~1e-4 at int4):
    only a model that predicts something shows what a recipe costs. Returns the saved model
    and its check and calibration inputs (counting sequences too)."""
    import keras
    import keras_hub
    import numpy as np

    keras.utils.set_random_seed(0)
    bb = keras_hub.models.GPT2Backbone(vocabulary_size=2048, num_layers=2, num_heads=4, hidden_dim=128,
                                       intermediate_dim=512, max_sequence_length=64)
    lm = keras_hub.models.GPT2CausalLM(backbone=bb, preprocessor=None)
    rng = np.random.default_rng(0)
    data = _counting(rng, 1280, 65)
    x = {k: v[:, :-1] for k, v in data.items()}
    lm.compile(optimizer=keras.optimizers.Adam(3e-3),
               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    lm.fit(x, data["token_ids"][:, 1:], batch_size=32, epochs=6, verbose=0)
    out = {"model": str(Path(workdir) / "gpt2_counting.keras"), "inputs": str(Path(workdir) / "inputs.npz"),
           "calibration": str(Path(workdir) / "calibration.npz")}
    lm.save(out["model"])
    np.savez(out["inputs"], **_counting(np.random.default_rng(1), 4))
    np.savez(out["calibration"], **_counting(np.random.default_rng(2), 64))
    return out


def bert_class() -> Any:
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    return keras_hub.models.BertBackbone(vocabulary_size=2048, num_layers=2, num_heads=4, hidden_dim=128,
                                         intermediate_dim=512, max_sequence_length=64)


def mobilenet() -> Any:
    """MobileNetV2 with random weights and batch-norm statistics of random images: at Keras'
    initial statistics its activations collapse to ~1e-10 and every output is exactly 1/10,
    which any quantization reproduces (an infinite SNR that says nothing)."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    m = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10)
    x = np.random.default_rng(0).uniform(-1, 1, (16, 96, 96, 3)).astype("float32")
    norms = [layer for layer in m.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0  # the moving statistics become those of this batch
    m(x, training=True)
    for layer in norms:
        layer.momentum = 0.99
    return m


MODELS = {
    "digits-cnn": {"calibration": "digits", "eval_data": "digits"},
    "mobilenet_v2": {"model": f"{HERE}:mobilenet", "calibration": "random"},
    "gpt2-class": {"prepare": gpt2_class},
    "bert-class": {"model": f"{HERE}:bert_class", "calibration": "random"},
}
RUNS = [  # (label, settings): every run on the same model, the same seed and so the same inputs
    ("litert-quantizer", {"formats": "tflite,onnx", "quantize": "dynamic,float16,int8,int4,auto",
                          "onnx_quantize": "dynamic,static,int4"}),
    ("converter", {"formats": "tflite", "quantize": "dynamic,float16,int8", "quantize_engine": "converter"}),
    ("auto, XNNPACK only", {"formats": "tflite", "quantize": "auto", "kernels": "xnnpack"}),
]


def _agreement(c: Any) -> dict[str, Any]:
    """The worst output's top-1 (classifier rows, LM next token), KL (LM) and cosine."""
    outs = [] if c is None else list(c.outputs)
    top = [o.top1_agreement for o in outs if o.top1_agreement is not None]
    kls = [o.kl for o in outs if o.kl is not None]
    cos = [o.cosine for o in outs if o.cosine is not None]
    return {"snr_db": None if c is None else c.min_snr_db, "top1": min(top) if top else None,
            "kl": max(kls) if kls else None, "cosine": min(cos) if cos else None}


def _row(model: str, run: str, r: Any, row: Any) -> dict[str, Any]:
    f32 = r.float_size(row.format, row.kind)
    ref = row.kernels.get("reference")
    engine = row.meta.get("engine") or ("-" if row.recipe is None else
                                        ("onnxruntime" if row.format == "onnx" else "litert-quantizer"))
    return {
        "model": model, "run": run, "artifact": row.filename, "label": row.label, "status": str(row.status),
        "engine": engine,
        "size": row.size, "ratio": (row.size / f32) if (row.size and f32 and row.recipe) else None,
        **_agreement(row.comparison),
        "task": row.task, "latency_ms": (row.latency or {}).get("median_ms"),
        "reference_kernels": None if ref is None else str(ref.status),
        "layers": row.meta.get("layers") if row.recipe is not None and row.recipe.approach.value == "mixed" else None,
        "error": row.error,
    }


KERAS_MODES = ("int8", "int4", "float8")


def keras_reference(name: str, model_ref: str, r: Any) -> list[dict[str, Any]]:
    """Keras' own ``model.quantize(mode)`` on the same model and check inputs: its outputs
    against the float model's, and its weights' bytes against the float weights' (a numeric
    reference: these models do not export to LiteRT, and Keras' int4 export is larger than
    float). Runs in this process: the model is rebuilt from the same seed, and a rebuild whose
    float outputs are not the run's is reported, not compared."""
    import numpy as np

    from edgekit.models.keras_io import call
    from edgekit.tolerances import tolerances_for
    from edgekit.validate import compare

    def build() -> Any:
        if model_ref.endswith(".keras"):
            import keras

            return keras.saving.load_model(model_ref)
        return globals()[model_ref.rsplit(":", 1)[1]]()

    def weight_bytes(m: Any) -> int:
        return int(sum(np.asarray(v.numpy()).nbytes for v in m.weights))

    names_in, names_out = r.spec.input_names, r.spec.output_names
    base = build()
    f32_bytes = weight_bytes(base)
    same = compare(r.reference, call(base, r.feeds, names_in, names_out), tolerances_for("float32", r.spec, {}, {}))
    rows = []
    for mode in KERAS_MODES:
        row = {"model": name, "run": "keras model.quantize()", "artifact": f"keras {mode}", "label": f"keras:{mode}",
               "engine": "keras", "size": None, "ratio": None, "task": None, "latency_ms": None,
               "reference_kernels": None, "layers": None, "error": None, "status": "reference"}
        if not same:
            rows.append({**row, **_agreement(None), "status": "n/a",
                         "error": "the rebuilt model is not the run's: " + "; ".join(same.failures())[:120]})
            continue
        m = build()
        try:
            m.quantize(mode)
            out = call(m, r.feeds, names_in, names_out)
        except Exception as exc:  # noqa: BLE001 - a mode Keras cannot apply to this model
            rows.append({**row, **_agreement(None), "status": "n/a", "error": str(exc).splitlines()[0][:120]})
            continue
        policy = {"int8": "dynamic_int8", "int4": "int4", "float8": "int8"}[mode]
        comp = compare(r.reference, {k: np.asarray(v) for k, v in out.items()}, tolerances_for(policy, r.spec, {}, {}))
        q_bytes = weight_bytes(m)
        rows.append({**row, **_agreement(comp), "size": q_bytes, "ratio": q_bytes / f32_bytes})
    return rows


def _best_single(rows: list[dict[str, Any]]) -> list[str]:
    """Per model: the per-layer ``auto`` recipe beside the single-recipe TFLite files no larger
    than it (5% slack), by worst-output SNR."""
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model and r["engine"] != "keras" and r["ratio"] is not None
                and r["status"] == "pass" and r["artifact"].endswith(".tflite")]
        for auto in (r for r in mine if r["label"] == "tflite:auto"):
            singles = [r for r in mine if r["label"] != "tflite:auto" and r["ratio"] <= auto["ratio"] * 1.05]
            best = max(singles, key=lambda r: r["snr_db"] if r["snr_db"] is not None else -1e9, default=None)
            if best is None:
                verdict = "no single recipe is as small"
            else:
                verdict = "no worse" if (auto["snr_db"] or 0) >= (best["snr_db"] or 0) - 0.05 else "WORSE"
            out.append(f"| {model} | {auto['run']} | {_f(auto['ratio'], '.2f')} | {_f(auto['snr_db'], '.1f')} | "
                       + ("- | - | - " if best is None else
                          f"{best['artifact']} ({best['engine']}) | {_f(best['ratio'], '.2f')} | {_f(best['snr_db'], '.1f')} ")
                       + f"| {verdict} |")
    return out


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
        prepare = spec.pop("prepare", None)
        if prepare is not None:
            print(f"{name}: training", file=sys.stderr, flush=True)
            spec.update(prepare(tempfile.mkdtemp(prefix=f"edgekit-bench-{name}-")))
        model = spec.pop("model")
        for run, settings in RUNS:
            out = tempfile.mkdtemp(prefix=f"edgekit-bench-{name}-")
            print(f"{name}: {run}", file=sys.stderr, flush=True)
            r = convert(model, out, pool=pool, **{"kernels": "xnnpack,reference", "generative": False, **spec, **settings})
            rows += [_row(name, run, r, x) for x in r.rows if x.recipe is not None or run == RUNS[0][0]]
            if run == RUNS[0][0]:
                rows += keras_reference(name, model, r)
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
             "gpt2-class is a causal LM trained to continue counting sequences (96% next-token accuracy), checked "
             "and calibrated on such sequences: its top-1 is the next token's (tie-aware) and KL the mean KL "
             "divergence of the next-token distribution from Keras' (nats); bert-class outputs are features (cosine, no top-1). "
             "Rows 'keras': Keras' own `model.quantize(mode)` run in Keras on the same inputs, as a numeric "
             "reference (no file: x f32 is its weights' bytes against the float weights').", "",
             "| model | artifact | engine | x f32 | SNR dB | top-1 | KL | cosine | accuracy drop | latency ms | ref kernels | result |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        drop = None if not r["task"] else r["task"].get("drop")
        lines.append(f"| {r['model']} | {r['artifact']} | {r['engine']} | {_f(r['ratio'], '.2f')} | "
                     f"{_f(r['snr_db'], '.1f')} | {_f(None if r.get('top1') is None else 100 * r['top1'], '.0f')} | "
                     f"{_f(r.get('kl'), '.2g')} | {_f(r.get('cosine'), '.4f')} | "
                     f"{_f(drop, '+.2f')} | {_f(r['latency_ms'], '.2f')} | {r['reference_kernels'] or '-'} | "
                     f"{r['status']}{(': ' + r['error'][:80]) if r['error'] else ''} |")
    best = _best_single(rows)
    if best:
        lines += ["", "The per-layer `auto` recipe against the best single-recipe TFLite file of the same model no "
                  "larger than it (5% slack), by worst-output SNR:", "",
                  "| model | auto run | auto x f32 | auto SNR dB | best single recipe | x f32 | SNR dB | auto is |",
                  "|---|---|---|---|---|---|---|---|", *best]
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
