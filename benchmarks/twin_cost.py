"""What the float64 twin costs in a run, per model, and where none can be built.

    python -m benchmarks.twin_cost

For each model: ``edgekit convert --to tflite,onnx`` on its default inputs; the twin's
seconds (build + run, from the manifest) against the whole run. Writes
benchmarks/results/<date>-twin.md.
"""
from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILDERS = ROOT / "tests" / "fixtures" / "builders.py"
CASES = [("builtin:mlp", "tflite,onnx"), ("builtin:cnn", "tflite,onnx"), ("builtin:two_input", "tflite,onnx"),
         ("builtin:conv1d", "tflite,onnx"), ("builtin:lstm", "tflite,onnx"), ("builtin:gru", "tflite,onnx"),
         ("builtin:embedding", "tflite,onnx"), (f"{BUILDERS}:tiny_transformer", "tflite"),
         (f"{ROOT / 'tests' / 'fixtures' / 'verdict_builders.py'}:subclassed", "tflite,onnx"),
         ]  # EfficientNetV2-B0: measured by benchmarks.faults; a SavedModel input: see main()


def main() -> int:
    from edgekit.errors import EdgekitError
    from edgekit.pipeline import convert
    from edgekit.worker import WorkerPool

    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}
    lines = [f"# Float64 twin cost ({dt.date.today()})", "",
             "`edgekit convert --to FORMATS` per model, default inputs (standard normal, batch 2); twin = build + run.", "",
             "| model | formats | twin | twin s | run s | share | Keras f32 vs f64 | ill-conditioned | verdicts |",
             "|---|---|---|---|---|---|---|---|---|"]
    with WorkerPool(env=env) as pool, tempfile.TemporaryDirectory() as work:
        saved = pool.tf.call("tests.helpers_raw:export_raw", str(ROOT / "benchmarks" / "fault_models.py"), "cnn",
                             str(Path(work) / "sm"), ["saved_model"], timeout=600)["saved_model"]
        for i, (model, fmts) in enumerate([*CASES, (saved, "tflite,onnx")]):
            name = "SavedModel (cnn)" if model == saved else model.split(":")[-1]
            try:
                res = convert(model, Path(work) / str(i), formats=fmts, pool=pool)
            except EdgekitError as exc:  # refused before any twin: say so in the table
                lines.append(f"| {name} | {fmts} | refused: {exc} | - | - | - | - | - | - |")
                continue
            t = res.feeds_info["truth"]
            share = f"{t['seconds'] / res.elapsed_s:.0%}" if t.get("seconds") else "-"
            errs = ", ".join(f"{e:.2g}" for e in t.get("keras_float32_error", {}).values()) or "-"
            ill = ", ".join(k for k, v in t.get("ill_conditioned", {}).items() if v) or "no"
            twin = "yes" if t["available"] else f"no: {t['reason']}"
            lines.append(f"| {name} | {fmts} | {twin} | {t.get('seconds') or 0:.2f} | {res.elapsed_s:.1f} | {share} | "
                         f"{errs} | {ill} | {' '.join(f'{r.label}:{r.status}' for r in res.rows)} |")
            print(lines[-1], file=sys.stderr)
    out = Path(__file__).resolve().parent / "results" / f"{dt.date.today()}-twin.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
