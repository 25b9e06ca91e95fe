"""Generation with a KV cache against a forward pass over the whole window per token.

For a GPT-2-class and a Llama-class keras-hub causal LM (small configs, random weights),
``edgekit convert`` makes the generative decoders (``generate.tflite``, ``generate.onnx``,
float and int4) and the single-pass artifacts. Measured here, on XNNPACK (TFLite) and ONNX
Runtime's CPU provider, one thread each:

- prefill of a 64-token prompt, and decode per token;
- the total time to generate 16, 64 and 128 tokens after it (it must grow linearly);
- what an export without a cache forces: one forward pass of the single-pass artifact over
  the whole sequence so far for every new token (quadratic in the tokens generated), timed
  at the window lengths it passes through.

Run: ``python -m benchmarks.generation``; writes ``benchmarks/results/<date>-generation.{json,md}``.
"""
from __future__ import annotations

import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve()
CACHE = 256
PROMPT = 64
NEW = (16, 64, 128)


def gpt2_class() -> Any:
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    bb = keras_hub.models.GPT2Backbone(vocabulary_size=8192, num_layers=4, num_heads=4, hidden_dim=256,
                                       intermediate_dim=1024, max_sequence_length=CACHE)
    return keras_hub.models.GPT2CausalLM(backbone=bb, preprocessor=None)


def llama_class() -> Any:
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    bb = keras_hub.models.LlamaBackbone(vocabulary_size=8192, num_layers=4, num_query_heads=8, num_key_value_heads=2,
                                        hidden_dim=256, intermediate_dim=768)
    return keras_hub.models.LlamaCausalLM(backbone=bb, preprocessor=None)


MODELS = {"gpt2-class": "gpt2_class", "llama-class": "llama_class"}


def _median_ms(fn: Any, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def _decoder_rows(path: Path, vocab: int) -> dict[str, Any]:
    from edgekit.generate import load_decoder

    rng = np.random.default_rng(0)
    prompt = [int(x) for x in rng.integers(0, vocab, PROMPT)]
    with load_decoder(path, threads=1) as dec:
        res = {"file": path.name, "size": path.stat().st_size}
        pre = []
        for _ in range(3):
            dec.reset()
            t = time.perf_counter()
            dec.feed(prompt)
            pre.append(time.perf_counter() - t)
        res["prefill_ms"] = float(np.median(pre) * 1e3)
        for n in NEW:
            dec.reset()
            dec.feed(prompt)
            t = time.perf_counter()
            for i in range(n):
                dec.feed([int(rng.integers(0, vocab))])
            res[f"decode_{n}_ms"] = (time.perf_counter() - t) * 1e3
        res["decode_ms_per_token"] = res[f"decode_{NEW[-1]}_ms"] / NEW[-1]
    return res


def _window_rows(path: Path, spec: Any, vocab: int) -> dict[str, Any]:
    """The single-pass artifact over the whole sequence at the lengths generation passes through."""
    import edgekit.runtime

    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"file": path.name}
    with edgekit.runtime.load(path, threads=1) as m:
        names = [t.name for t in m.inputs]
        fixed = next((t.shape[1] for t in m.inputs if len(t.shape) > 1 and t.shape[1] > 0), None)
        for length in (PROMPT + n for n in (0, *NEW)):
            if fixed is not None and fixed != length:
                out["fixed_length"] = int(fixed)
                continue
            ids = rng.integers(0, vocab, (1, length)).astype(np.int32)
            feeds = {n: (ids if "token" in n or "input_ids" in n else np.ones_like(ids)) for n in names}
            out[f"forward_{length}_ms"] = _median_ms(lambda: m.predict(feeds), 3)
    return out


def main(names: list[str]) -> None:
    from edgekit import convert
    from edgekit.worker import default_pool

    pool = default_pool()
    rows = []
    for name in names or list(MODELS):
        out = Path(tempfile.mkdtemp(prefix=f"edgekit-genbench-{name}-"))
        print(f"{name}: converting", file=sys.stderr, flush=True)
        r = convert(f"{HERE}:{MODELS[name]}", out, pool=pool, formats="tflite,onnx", quantize="int4",
                    onnx_quantize="int4", kernels="xnnpack", max_cache_length=CACHE)
        vocab = next(x.meta["generative"]["vocab"] for x in r.rows if x.kind == "generate" and x.meta.get("generative"))
        status = {x.label: str(x.status) for x in r.rows}
        for x in r.rows:
            if x.kind != "generate" or not x.path:
                continue
            print(f"{name}: timing {x.filename}", file=sys.stderr, flush=True)
            d = _decoder_rows(Path(x.path), vocab)
            d.update(model=name, label=x.label, status=status[x.label],
                     matched=f"{x.meta['generation']['matched']}/{x.meta['generation']['steps']}")
            rows.append(d)
        for x in r.rows:
            if x.kind == "" and x.recipe is None and x.format in ("tflite", "onnx") and x.path:
                w = _window_rows(Path(x.path), r.spec, vocab)
                w.update(model=name, label=f"{x.label} (single pass)", status=status[x.label], size=x.size)
                rows.append(w)
    date = datetime.date.today().isoformat()
    res = ROOT / "benchmarks" / "results"
    (res / f"{date}-generation.json").write_text(json.dumps(rows, indent=1, default=str))
    (res / f"{date}-generation.md").write_text(render(rows, date))
    print(render(rows, date))


def _f(x: Any, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def render(rows: list[dict[str, Any]], date: str) -> str:
    import ai_edge_litert
    import onnxruntime

    lines = [f"# Generation with a KV cache, {date}", "",
             f"`python -m benchmarks.generation` on {platform.machine()}; ai-edge-litert "
             f"{getattr(ai_edge_litert, '__version__', '?')} (XNNPACK), onnxruntime {onnxruntime.__version__} (CPU); "
             f"one thread. Cache {CACHE} positions, prompt {PROMPT} tokens, random weights (latency only). "
             "'checked': next tokens equal to Keras' greedy in convert's check (float), or matched (int4, judged "
             "on top-1 and KL).", "",
             "| model | decoder | size MB | prefill 64 ms | decode ms/token | 16 tokens ms | 64 tokens ms | "
             "128 tokens ms | checked | result |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in (r for r in rows if "prefill_ms" in r):
        lines.append(f"| {r['model']} | {r['file']} | {r['size'] / 1e6:.2f} | {_f(r['prefill_ms'])} | "
                     f"{_f(r['decode_ms_per_token'], '.3f')} | {_f(r['decode_16_ms'], '.1f')} | "
                     f"{_f(r['decode_64_ms'], '.1f')} | {_f(r['decode_128_ms'], '.1f')} | {r['matched']} | {r['status']} |")
    lengths = [PROMPT + n for n in (0, *NEW)]
    lines += ["", "Without a cache, every new token is a forward pass of the single-pass artifact over the whole "
              "sequence so far (ms per pass at each length; generating N tokens costs the sum over the lengths it "
              "passes through):", "",
              "| model | single-pass artifact | size MB | " + " | ".join(f"pass at {n} ms" for n in lengths)
              + " | 128 tokens, estimated ms |", "|---|---|---|" + "---|" * (len(lengths) + 1)]
    for r in (r for r in rows if "prefill_ms" not in r):
        cells = [_f(r.get(f"forward_{n}_ms")) for n in lengths]
        est = None
        if all(r.get(f"forward_{n}_ms") is not None for n in lengths):
            xs = np.array(lengths, float)
            ys = np.array([r[f"forward_{n}_ms"] for n in lengths])
            coef = np.polyfit(xs, ys, 1)  # per-pass cost, about linear in the length
            est = float(sum(np.polyval(coef, PROMPT + i) for i in range(NEW[-1])))
        note = f" (fixed at {r['fixed_length']} tokens)" if r.get("fixed_length") else ""
        lines.append(f"| {r['model']} | {r['file']}{note} | {(r.get('size') or 0) / 1e6:.2f} | " + " | ".join(cells)
                     + f" | {_f(est, '.0f')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main(sys.argv[1:])
