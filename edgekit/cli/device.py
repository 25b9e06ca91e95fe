"""``edgekit run``, ``bench`` and ``inspect``: the commands that work on a device with only
numpy and a runtime installed (no TensorFlow, Keras or tf2onnx is imported)."""
from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from edgekit.cli.options import aliased
from edgekit.errors import InputError

def read_inputs(path: str, predictor: Any) -> tuple[dict[str, np.ndarray], str]:
    """Arrays by input name from .npz/.npy or an image file; returns them and a note."""
    from edgekit.feeds import IMAGE_SUFFIXES, load_arrays

    p = Path(path)
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return read_image(p, predictor)
    return check_inputs(load_arrays(path), predictor), ""


def check_inputs(arrays: dict[str, np.ndarray], predictor: Any) -> dict[str, np.ndarray]:
    """Names, shapes and dtypes checked against the artifact's inputs before it runs, with
    the same one-line exit-2 messages as ``predict`` (not the runtime's own, which name
    internal nodes or are cut off)."""
    from edgekit.feeds import bind

    return bind(arrays, _input_specs(predictor), source="--inputs")


def read_texts(artifact: str, texts: list[str], path: str | None) -> tuple[dict[str, np.ndarray], str]:
    """Token ids for an artifact whose model took strings: ``texts`` (--text) or a .txt file
    (one text a line) or a .json list, tokenized by the preprocessing.json beside it."""
    from edgekit import text

    vecs = text.load(artifact)
    if not vecs:
        raise InputError(f"no {text.FILENAME} beside {artifact}: this artifact takes numbers, pass --input arrays")
    if len(vecs) != 1:
        raise InputError(f"{text.FILENAME} describes {len(vecs)} text inputs; --text feeds one: pass --input arrays")
    if path:
        raw = Path(path).read_text(encoding="utf-8")
        if path.endswith(".json"):
            data = json.loads(raw)
            if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
                raise InputError(f"{path}: expected a JSON list of strings")
            texts = data
        else:
            texts = [ln for ln in raw.splitlines() if ln.strip()]
    if not texts:
        raise InputError("no text given")
    vec = vecs[0]
    return {vec.feeds: vec(texts)}, f"{len(texts)} text(s) tokenized for {vec.feeds} ({vec.layer}, {text.FILENAME})"


def read_image(p: Path, predictor: Any) -> tuple[dict[str, np.ndarray], str]:
    """One image as a batch of 1, resized to the model's (H, W, C) input, scaled to [0, 1]."""
    from edgekit.feeds import image_pixels, require_pillow

    require_pillow("reading images needs Pillow: pip install pillow (or pass an .npy array)")
    images = [t for t in predictor.inputs if len(t.shape) == 4]
    if len(predictor.inputs) != 1 or not images:
        raise InputError(f"an image can feed a model with one (batch, H, W, C) input; this one has {predictor.inputs}")
    t = images[0]
    _, h, w, c = t.shape
    if h <= 0 or w <= 0 or c not in (1, 3, 4):
        raise InputError(f"input {t.name!r} has shape {t.shape}: need a fixed (H, W) and 1, 3 or 4 channels for an image")
    arr, src = image_pixels(p, h, w, c)
    return {t.name: arr[None]}, f"image {p.name} {src[0]}x{src[1]} resized to {w}x{h}, {c} channel(s), scaled to [0, 1]"


def _is_classifier(a: np.ndarray) -> bool:
    return a.ndim == 2 and a.shape[1] > 1


def topk_lines(name: str, a: np.ndarray, k: int) -> list[str]:
    lines = []
    for i, row in enumerate(a[:16]):
        idx = np.argsort(-row)[:k]
        lines.append(f"  {name}[{i}] top-{len(idx)}: " + ", ".join(f"{j} ({row[j]:.4f})" for j in idx))
    if len(a) > 16:
        lines.append(f"  ... {len(a) - 16} more rows")
    return lines


@click.command()
@click.argument("artifact", type=click.Path(dir_okay=False))
@aliased("--inputs", "-i", "input_path", aliases=("--input",), default=None, metavar="FILE",
         help="Inputs: .npz (one array per input name), .npy (one input), an image (.png/.jpg), or for a "
              "model that took strings a .txt (one text a line) or .json list of texts.")
@click.option("--text", "texts", multiple=True, metavar="TEXT",
              help="A text for a model that took strings (repeatable); tokenized by preprocessing.json.")
@aliased("--out", "-o", "output_path", aliases=("--output",), default=None, metavar="FILE.npz",
         help="Write the outputs (and NAME_classes for classifier outputs) to an .npz.")
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1, 1000), help="Classes shown per row.")
@click.option("--threads", default=None, type=click.IntRange(1, 256), help="Interpreter threads.")
@click.option("--no-xnnpack", is_flag=True, help="TFLite: run the builtin kernels without the XNNPACK delegate.")
@click.option("--raw", is_flag=True,
              help="Integer-I/O quantized models: take and return the raw integers (no (de)quantization). "
                   "Models with float inputs and outputs have none: a note says so.")
def run(artifact: str, input_path: str | None, texts: tuple[str, ...], output_path: str | None, top_k: int,
        threads: int | None, no_xnnpack: bool, raw: bool) -> None:
    """Run ARTIFACT (.tflite or .onnx) on inputs and print its outputs."""
    from edgekit.fsutil import atomic_write_bytes
    from edgekit.runtime import load

    if not input_path and not texts:
        raise click.UsageError("pass --inputs FILE (or --text for a model that took strings)")
    pred = load(artifact, threads=threads, xnnpack=not no_xnnpack, raw_io=raw)
    if raw and not any(t.quantized for t in (*pred.inputs, *pred.outputs)):
        # an int8 model converted with float I/O quantizes inside the graph: there are no
        # integers at its boundary to pass through, so --raw changes nothing; say so
        click.echo(f"--raw has no effect: {Path(artifact).name} takes and returns floats "
                   "(it quantizes inside the model); only integer-I/O models have raw values", err=True)
    if texts or (input_path and Path(input_path).suffix.lower() in (".txt", ".json")):
        arrays, note = read_texts(artifact, list(texts), None if texts else input_path)
    else:
        arrays, note = read_inputs(input_path, pred)
    if note:
        click.echo(note, err=True)
    out = pred.predict(arrays)
    for name, a in out.items():
        click.echo(f"{name}: shape {tuple(a.shape)} dtype {a.dtype}")
        if _is_classifier(a):
            click.echo("\n".join(topk_lines(name, a, top_k)))
        else:
            with np.printoptions(precision=5, suppress=True, threshold=40):
                click.echo(f"  {a}")
    if output_path:
        import io

        save = dict(out)
        for name, a in out.items():
            if _is_classifier(a):
                save[f"{name}_classes"] = np.argmax(a, axis=1)
        buf = io.BytesIO()
        np.savez(buf, **save)
        atomic_write_bytes(output_path, buf.getvalue())
        click.echo(f"outputs written to {output_path}", err=True)


def _input_specs(predictor: Any) -> tuple[Any, ...]:
    """The artifact's inputs as TensorSpecs: float32 where a quantized input takes floats."""
    from edgekit.specs import TensorSpec

    return tuple(
        TensorSpec(t.name, tuple(None if d < 0 else d for d in t.shape),
                   "float32" if t.quantized and not predictor.raw_io else t.dtype)
        for t in predictor.inputs
    )


def _random_inputs(pred: Any, batch: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded random inputs of the artifact's shapes (``feeds.random_feeds``), at ``batch``
    unless an input fixes another batch size."""
    from edgekit.feeds import random_feeds

    for t in pred.inputs:
        if any(d < 0 for d in t.shape[1:]):
            raise InputError(f"input {t.name!r} has dynamic dimensions {t.shape}: pass --input with real arrays")
    fixed = [t.shape[0] for t in pred.inputs if t.shape and t.shape[0] not in (-1, 1, batch)]
    return random_feeds(_input_specs(pred), fixed[0] if fixed else batch, seed)


def bench_predictor(pred: Any, feeds: dict[str, np.ndarray], runs: int, warmup: int) -> dict[str, Any]:
    from edgekit.runtimes.base import measure

    _, first_ms, times, total = measure(lambda: pred.predict(feeds), runs, warmup)
    q = np.percentile(times, [50, 90, 99])
    batch = int(next(iter(feeds.values())).shape[0]) if feeds else 1
    return {
        "first_inference_ms": first_ms,
        "p50_ms": float(q[0]), "p90_ms": float(q[1]), "p99_ms": float(q[2]),
        "mean_ms": statistics.fmean(times), "runs": runs, "warmup": warmup,
        "throughput_samples_per_s": batch * runs / total if total > 0 else None,
    }


@click.command()
@click.argument("artifact", type=click.Path(dir_okay=False))
@click.option("--threads", default=None, type=click.IntRange(1, 256), help="Interpreter threads (default: the runtime's).")
@aliased("--batch-size", "batch", aliases=("--batch",), default=1, show_default=True, type=click.IntRange(1, 65536),
         help="Batch size of the random inputs timed (ignored with --inputs).")
@click.option("--runs", default=100, show_default=True, type=click.IntRange(1, 10_000_000), help="Timed inferences.")
@click.option("--warmup", default=10, show_default=True, type=click.IntRange(0, 100_000),
              help="Untimed inferences before the timed ones.")
@aliased("--inputs", "-i", "input_path", aliases=("--input",), default=None, metavar="FILE",
         help="Inputs to time with (default: seeded random data of the model's shapes).")
@click.option("--no-xnnpack", is_flag=True, help="TFLite: time the builtin kernels without the XNNPACK delegate.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def bench(artifact: str, threads: int | None, batch: int, runs: int, warmup: int, input_path: str | None,
          no_xnnpack: bool, as_json: bool) -> None:
    """Time ARTIFACT: load, first inference, latency percentiles, throughput, peak memory."""
    from edgekit.runtime import load

    t0 = time.perf_counter()
    pred = load(artifact, threads=threads, xnnpack=not no_xnnpack)
    load_ms = (time.perf_counter() - t0) * 1e3
    feeds = read_inputs(input_path, pred)[0] if input_path else _random_inputs(pred, batch, 0)
    stats = bench_predictor(pred, feeds, runs, warmup)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = {
        "artifact": os.path.abspath(artifact), "backend": pred.backend, "threads": threads, "batch": batch,
        "xnnpack": not no_xnnpack, "load_ms": load_ms, **stats, "peak_rss_mb": peak_kb / 1024,
    }
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    click.echo(f"{artifact} on {pred.backend} (batch {batch}, threads {threads or 'default'})")
    click.echo(f"  load            {load_ms:9.2f} ms")
    click.echo(f"  first inference {stats['first_inference_ms']:9.3f} ms")
    click.echo(f"  p50 / p90 / p99 {stats['p50_ms']:9.3f} / {stats['p90_ms']:.3f} / {stats['p99_ms']:.3f} ms  ({runs} runs after {warmup} warm-up)")
    click.echo(f"  throughput      {stats['throughput_samples_per_s']:9.1f} samples/s")
    click.echo(f"  peak RSS        {peak_kb / 1024:9.1f} MB (whole process)")


@click.command()
@click.argument("artifact", type=click.Path(dir_okay=False))
@click.option("--runtime", "runtime_spec", default=None, metavar="NAME==VERSION",
              help="Check the operators against a runtime: e.g. tflite-runtime==2.14, ai-edge-litert==2.3, "
                   "'installed' (probe the runtime installed here) or a table .json.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def inspect(artifact: str, runtime_spec: str | None, as_json: bool) -> None:
    """Describe ARTIFACT: inputs/outputs, operators and versions, Flex/custom ops, quantization,
    size; with --runtime, the operators that runtime cannot execute (exit 3 if any)."""
    from edgekit.converters import format_of
    from edgekit.fsutil import sha256_of

    p = Path(artifact)
    if not p.is_file():
        raise InputError(f"{artifact} does not exist or is not a file")
    data = p.read_bytes()
    info: dict[str, Any] = {"artifact": str(p), "size": len(data), "sha256": sha256_of(p)}
    fmt = format_of(p, trust_name=True)
    if fmt is not None and fmt.runtime == "litert":
        info.update(_inspect_tflite(data, runtime_spec))
    elif fmt is not None and fmt.runtime == "onnxruntime":
        if runtime_spec:
            raise InputError("--runtime checks TFLite operator versions; this is an ONNX file")
        info.update(_inspect_onnx(str(p)))
    else:
        raise InputError(f"{artifact} is neither a TFLite (TFL3) nor an ONNX file")
    if as_json:
        click.echo(json.dumps(info, indent=1))
    else:
        _print_inspect(info)
    if info.get("incompatible"):
        sys.exit(3)
    if info.get("runnable_here") is False:  # described, but it does not load (or run) here
        sys.exit(1)


def _inspect_tflite(data: bytes, runtime_spec: str | None) -> dict[str, Any]:
    from edgekit.runtimes.tflite_ops import describe

    d = describe(data)
    io = _tflite_io(data)
    out: dict[str, Any] = {"format": "tflite", **io, **d.to_json()}
    out["quantization"] = [
        {"tensor": t.name, "dtype": t.dtype, "scale": t.scales[0] if len(t.scales) == 1 else f"{len(t.scales)} per-axis",
         "zero_point": t.zero_points[0] if len(t.zero_points) == 1 else f"{len(t.zero_points)} per-axis"}
        for t in d.quantized_tensors[:200]
    ]
    if runtime_spec:
        from edgekit.runtimes.compat import find_table, incompatibilities

        table = find_table(runtime_spec)
        out["runtime_check"] = {"runtime": table["runtime"], "version": table["version"], "method": table["method"]}
        out["incompatible"] = incompatibilities(d.ops, table)
    return out


def _tflite_io(data: bytes) -> dict[str, Any]:
    try:
        from edgekit.runtime import TFLitePredictor
    except ImportError:  # pragma: no cover
        return {}
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".tflite") as fh:
        fh.write(data)
        fh.flush()
        try:
            pred = TFLitePredictor(fh.name)
        except Exception as exc:  # noqa: BLE001 - report, do not fail: inspecting is the point
            return {"runnable_here": False, "load_error": str(exc)}
        io = {"inputs": [vars(t) for t in pred.inputs], "outputs": [vars(t) for t in pred.outputs]}
        try:
            from edgekit.runtime import quiet_litert_log

            with quiet_litert_log():
                pred._it.allocate_tensors()  # Flex ops load but fail here, when kernels are prepared
        except Exception as exc:  # noqa: BLE001
            return {"runnable_here": False, "load_error": str(exc).splitlines()[0], **io}
        return {"runnable_here": True, "runtime_loaded_with": pred.backend, **io}


def _inspect_onnx(path: str) -> dict[str, Any]:
    out: dict[str, Any] = {"format": "onnx"}
    try:
        from edgekit.runtime import OnnxPredictor

        pred = OnnxPredictor(path)
        out.update({"runnable_here": True, "inputs": [vars(t) for t in pred.inputs], "outputs": [vars(t) for t in pred.outputs]})
    except Exception as exc:  # noqa: BLE001
        out.update({"runnable_here": False, "load_error": str(exc)})
    try:
        import onnx
    except ImportError:
        out["operators_note"] = "operator list needs the onnx package (pip install onnx)"
        return out
    from collections import Counter

    try:
        m = onnx.load(path, load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf DecodeError and friends
        if not out["runnable_here"]:
            raise InputError(f"malformed ONNX file {path}: {str(exc).splitlines()[0][:200]}") from None
        out["operators_note"] = f"the onnx package cannot parse it: {str(exc).splitlines()[0][:200]}"
        return out
    def text(v: Any) -> str:  # a damaged proto can hold invalid UTF-8, which protobuf returns as bytes
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)

    try:
        out["opset"] = {text(i.domain) or "ai.onnx": int(i.version) for i in m.opset_import}
        ops = Counter(text(n.op_type) for n in m.graph.node)
        out["operators"] = [{"name": k, "count": v} for k, v in sorted(ops.items())]
        out["producer"] = f"{text(m.producer_name)} {text(m.producer_version)}".strip()
    except Exception as exc:  # noqa: BLE001 - fields of a damaged graph
        if not out["runnable_here"]:
            raise InputError(f"malformed ONNX file {path}: {type(exc).__name__}") from None
        out["operators_note"] = f"the graph's fields are damaged: {type(exc).__name__}"
    return out


def _print_inspect(info: dict[str, Any]) -> None:
    from edgekit.report.matrix import human_size

    click.echo(f"{info['artifact']}: {info['format']}, {human_size(info['size'])}, sha256 {info['sha256'][:16]}...")
    if not info.get("runnable_here", True):
        click.echo(f"  cannot run with the runtime installed here: {info.get('load_error')}")
    for kind in ("inputs", "outputs"):
        for t in info.get(kind, []):
            q = f", quantized scale {t['scale']:.4g} zero point {t['zero_point']}" if t.get("scale") else ""
            click.echo(f"  {kind[:-1]:6} {t['name']}: {t['dtype']} {tuple(t['shape'])}{q}")
    if "opset" in info:
        click.echo(f"  opset {info['opset']}")
    ops = info.get("operators", [])
    if ops:
        click.echo(f"  operators ({len(ops)}):")
        for o in ops:
            v = f" v{o['version']}" if "version" in o else ""
            tag = " [custom]" if o.get("custom") else ""
            click.echo(f"    {o['name']}{v} x{o['count']}{tag}")
    if info.get("flex_ops"):
        click.echo(f"  Flex ops (need the Select TF ops delegate): {', '.join(info['flex_ops'])}")
    if info.get("custom_ops"):
        click.echo(f"  custom ops: {', '.join(info['custom_ops'])}")
    if "quantized_tensors" in info:
        qt = info["quantized_tensors"]
        click.echo("  quantized tensors: " + (", ".join(f"{n} {k}" for k, n in qt.items()) if qt else "none (float model)"))
    if "runtime_check" in info:
        rc = info["runtime_check"]
        bad = info["incompatible"]
        if bad:
            click.echo(f"  NOT runnable on {rc['runtime']} {rc['version']}:")
            for b in bad:
                click.echo(f"    {b}")
        else:
            click.echo(f"  runnable on {rc['runtime']} {rc['version']} (every operator version is supported)")
