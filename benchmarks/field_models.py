"""The zoo of field models (tests/fixtures/field_zoo.py): edgekit with no flags beside Keras'
own ``model.export(format="litert")`` and ``model.export(format="onnx")`` on the same models.

A raw export counts as passing when the file loads in LiteRT / ONNX Runtime, runs on the
same inputs edgekit checks with (bound by name, else by position) and agrees with Keras
within edgekit's float tolerance. Run: ``python -m benchmarks.field_models [NAME ...]``;
writes ``benchmarks/results/<date>-field-models.{json,md}``.
"""
from __future__ import annotations

import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "tests" / "fixtures" / "field_zoo.py"

# One model per process for the raw exports: Keras' ONNX export patches numpy and tf2onnx
# for the whole process, and a converter crash must not end the measurement.
RAW = r'''
import json, os, sys, warnings
os.environ["KERAS_BACKEND"] = "tensorflow"
warnings.simplefilter("ignore")
import numpy as np, keras
sys.path.insert(0, os.path.dirname(sys.argv[1]))
from edgekit.models.keras_io import BUILD_SEED, _import_file, call, io_names
feeds = {k: v for k, v in np.load(sys.argv[3]).items()}
keras.utils.set_random_seed(BUILD_SEED)
model = getattr(_import_file(sys.argv[1], "zoo"), sys.argv[2])()
from edgekit.models.keras_io import functional_view
view, _ = functional_view(model)  # a subclassed model's reference; Keras exports the model itself
ins, outs = io_names(view)
if set(feeds) != set(ins) and len(feeds) == len(ins):
    # automatic input names count up per process (input_layer_4 there, input_layer here)
    feeds = dict(zip(ins, feeds.values()))
ref = call(view, feeds, ins, outs)
res = {}
def agree(got):
    # outputs by the model's names where the file kept them, else each model output is paired
    # with the first unused file output of the same shape (Keras renames them output_0, ...)
    got = dict(got)
    if len(got) != len(outs):
        return f"{len(got)} outputs, expected {len(outs)}"
    pairs, free = [], list(got)
    for n in outs:
        k = n if n in free else next((k for k in free if np.asarray(got[k]).shape == ref[n].shape), None)
        if k is None:
            return f"no output of shape {ref[n].shape} for {n}"
        free.remove(k)
        pairs.append((np.asarray(got[k]), ref[n]))
    for g, w in pairs:
        if g.shape != w.shape:
            return f"shape {g.shape} vs {w.shape}"
        d = float(np.max(np.abs(g.astype(np.float64) - w))) if w.size else 0.0
        scale = float(np.max(np.abs(w))) if w.size else 0.0
        if not d <= 1e-4 + 1e-3 * scale:
            return f"max|d| {d:.3g} on outputs of scale {scale:.3g}"
    return "pass"
def first(e):
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
d = sys.argv[4]
try:
    model.export(os.path.join(d, "m.tflite"), format="litert", verbose=False)
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=os.path.join(d, "m.tflite"))
    runner = it.get_signature_runner()
    names = list(runner.get_input_details())
    args = {n: feeds[n] if n in feeds else feeds[ins[i]] for i, n in enumerate(names)}
    out = runner(**args)
    res["litert"] = agree(out)
except Exception as e:
    res["litert"] = "error: " + first(e)
try:
    model.export(os.path.join(d, "m.onnx"), format="onnx", verbose=False)
    import onnxruntime as ort
    s = ort.InferenceSession(os.path.join(d, "m.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in s.get_inputs()]
    args = {n: feeds[n] if n in feeds else feeds[ins[i]] for i, n in enumerate(names)}
    res["onnx"] = agree(zip([o.name for o in s.get_outputs()], s.run(None, args)))
except Exception as e:
    res["onnx"] = "error: " + first(e)
print("RESULT " + json.dumps(res))
'''


def edgekit_rows(names: list[str], work: Path) -> dict[str, dict[str, Any]]:
    from edgekit.pipeline import convert
    from edgekit.worker import default_pool

    out: dict[str, dict[str, Any]] = {}
    with default_pool() as pool:
        for n in names:
            try:
                r = convert(f"{ZOO}:{n}", work / n, formats="tflite,onnx", pool=pool)
                out[n] = {"rows": {row.label: row.status if row.status == "pass" else f"{row.status}: {row.error}"
                                   for row in r.rows},
                          # a string model's raw export takes the texts themselves
                          "feeds": ({k: __import__("numpy").asarray(v).reshape(-1, 1)
                                     for k, v in r.feeds_info["texts"].items()} if r.feeds_info.get("texts")
                                    else dict(r.feeds)),
                          "onnx_path": next((row.meta.get("export_path") for row in r.rows if row.format == "onnx"), None)}
            except Exception as exc:  # noqa: BLE001 - a failure to report, not to stop on
                out[n] = {"rows": {"tflite": f"error: {exc}", "onnx": f"error: {exc}"}, "feeds": None}
            print(n, out[n]["rows"], flush=True)
    return out


def raw_rows(name: str, feeds: dict[str, Any] | None, work: Path) -> dict[str, str]:
    import numpy as np

    if feeds is None:
        return {"litert": "not measured (no check inputs)", "onnx": "not measured (no check inputs)"}
    d = work / f"raw_{name}"
    d.mkdir(parents=True, exist_ok=True)
    np.savez(d / "feeds.npz", **feeds)
    try:
        p = subprocess.run([sys.executable, "-c", RAW, str(ZOO), name, str(d / "feeds.npz"), str(d)],
                           capture_output=True, text=True, timeout=900, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"litert": "error: timed out", "onnx": "error: timed out"}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (p.stderr.strip().splitlines() or ["no output"])[-1][:160]
    return {"litert": f"error: process died ({tail})", "onnx": f"error: process died ({tail})"}


def main(argv: list[str]) -> None:
    sys.path.insert(0, str(ZOO.parent))
    import field_zoo

    names = argv or field_zoo.HUB + field_zoo.HAND
    work = Path(tempfile.mkdtemp(prefix="edgekit-field-"))
    ours = edgekit_rows(names, work)
    import numpy as np

    np.savez(work / "edgekit_rows.npz", rows=np.asarray(json.dumps({n: v["rows"] for n, v in ours.items()})))
    table = []
    for n in names:
        raw = raw_rows(n, ours[n]["feeds"], work)
        print(n, raw, flush=True)
        table.append({"model": n, "edgekit": ours[n]["rows"], "onnx_path": ours[n].get("onnx_path"),
                      "keras_export": raw})
    ok = lambda v: v == "pass"  # noqa: E731
    summary = {
        "models": len(table),
        "edgekit_tflite_pass": sum(ok(t["edgekit"].get("tflite")) for t in table),
        "edgekit_onnx_pass": sum(ok(t["edgekit"].get("onnx")) for t in table),
        "keras_litert_pass": sum(ok(t["keras_export"].get("litert")) for t in table),
        "keras_onnx_pass": sum(ok(t["keras_export"].get("onnx")) for t in table),
    }
    stamp = datetime.date.today().isoformat()
    res = ROOT / "benchmarks" / "results"
    (res / f"{stamp}-field-models.json").write_text(json.dumps({"summary": summary, "models": table}, indent=1))
    lines = ["| model | edgekit tflite | edgekit onnx (path) | keras export litert | keras export onnx |",
             "|---|---|---|---|---|"]
    for t in table:
        cell = lambda v: "pass" if v == "pass" else (v or "?")[:90].replace("|", "/")  # noqa: E731
        lines.append(f"| {t['model']} | {cell(t['edgekit'].get('tflite'))} | {cell(t['edgekit'].get('onnx'))}"
                     f" ({t['onnx_path']}) | {cell(t['keras_export'].get('litert'))} | {cell(t['keras_export'].get('onnx'))} |")
    lines.append("")
    lines.append(f"Passing, of {summary['models']}: edgekit TFLite {summary['edgekit_tflite_pass']}, edgekit ONNX "
                 f"{summary['edgekit_onnx_pass']}; Keras export LiteRT {summary['keras_litert_pass']}, "
                 f"Keras export ONNX {summary['keras_onnx_pass']}.")
    (res / f"{stamp}-field-models.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
