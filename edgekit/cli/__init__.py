"""The ``edgekit`` command: a thin layer over the Python API.

Imports nothing heavy at module level: ``edgekit --help`` answers in well under a second.
Every ``EdgekitError`` is printed as one line (``edgekit: error: ...``) with its exit code;
usage errors exit 2.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from edgekit import __version__
from edgekit.converters import FORMATS
from edgekit.cli.options import UNSAFE_HELP, aliased, check_options
from edgekit.errors import EXIT_USAGE, EdgekitError

_T0 = time.perf_counter()


def _needs_converter(command: str, target: str | None = None) -> None:
    """One line instead of a worker's import failure when the ``convert`` extra is absent.

    ``target``: an artifact that LiteRT or ONNX Runtime runs needs no converter.
    """
    if target is not None:
        from edgekit.converters import format_of
        from edgekit.runtimes import RUNTIMES

        fmt = format_of(target, trust_name=True) or next(  # a missing file: what its name says
            (f for f in FORMATS.values() if f.named(Path(target).name)), None)
        if fmt is not None and RUNTIMES[fmt.runtime].worker == "rt":
            return
    from edgekit.extras import require_converter

    require_converter(command)


def _progress(quiet: bool) -> Any:
    def say(msg: str) -> None:
        if not quiet:
            click.echo(f"  {time.perf_counter() - _T0:6.1f}s  {msg}", err=True)

    return say


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="edgekit")
def cli() -> None:
    """Export a Keras model to every deployable format and check that each artifact
    computes what the model computes.

    \b
    Exit codes: 0 all passed, 1 a conversion or runtime failed,
                2 usage or input error, 3 a tolerance was exceeded.
    """


FORMATS_HELP = ", ".join(FORMATS)
QUIET_HELP = "No progress lines."


@cli.command()
@click.argument("model", metavar="MODEL")
@click.option("--out", "-o", "out_dir", default="edgekit-out", show_default=True, metavar="DIR",
              help="Output directory for the artifacts and manifest.json.")
@click.option("--to", "formats", default=None, metavar="LIST",
              help=f"Comma-separated formats to export (default: all of {FORMATS_HELP}).")
@click.option("--opset", default=17, show_default=True, type=int, help="ONNX opset.")
@check_options
@click.option("--target-runtime", default=None, metavar="NAME==VERSION",
              help="Fail the TFLite artifact if any operator version would not run on this runtime "
                   "(e.g. tflite-runtime==2.14; see 'edgekit inspect --runtime').")
@click.option("--devices", default=None, metavar="LIST",
              help="Devices to run every artifact on, as columns: x86-cpu (default), arm64-cortex-a53/a72/a76, "
                   "arm64-neoverse-n1, cuda, or all-available (see 'edgekit devices').")
@click.option("--force", is_flag=True, help="Write into a non-empty --out directory that edgekit did not make "
                                           "(files edgekit does not write are kept; the input is never replaced).")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines; only the matrix.")
@click.option("--json", "json_path", default=None, metavar="FILE",
              help="The result as the JSON report edgekit check writes ('-': standard output, the matrix then "
                   "goes to standard error).")
@click.option("--markdown", "md_path", default=None, metavar="FILE", help="A Markdown table to paste in a pull request.")
@click.option("--html", "html_path", default=None, metavar="FILE", help="The one-file HTML report with its plots.")
def convert(model: str, out_dir: str, formats: str | None, opset: int, inputs: str | None, batch_size: int,
            seed: int, shapes: tuple[str, ...], atol: tuple[str, ...], rtol: tuple[str, ...], unsafe: bool,
            custom_objects: str | None, timeout: float, target_runtime: str | None, devices: str | None, force: bool,
            quiet: bool, json_path: str | None, md_path: str | None, html_path: str | None, no_truth: bool,
            allow_nonfinite_inputs: bool, **quant: Any) -> None:
    """Export MODEL to every format and check each artifact against it.

    MODEL is a .keras or .h5 file, a SavedModel directory, path/to/module.py:function
    returning a Keras model, or builtin:NAME (mlp, two_input, cnn, conv1d, lstm, gru,
    embedding). Every artifact runs on the same inputs, bound by name, and each output
    is compared with the model's own: an output passes when
    max|artifact - model| <= atol + rtol * max|model output| and the artifact is no further
    from a float64 twin of the model than 3x Keras float32's own distance from it (plus 3e-6
    of the output's scale). Where Keras float32's own distance from the twin is a third of the
    bound or more (ill-conditioned inputs), the second criterion alone decides.
    """
    _needs_converter("convert")
    from edgekit.feeds import parse_shapes
    from edgekit.options import ConvertOptions
    from edgekit.pipeline import convert as run_convert
    from edgekit.report.matrix import render
    from edgekit.tolerances import parse_tolerance_overrides

    explain = quant.pop("explain", False)
    quant["generative"] = not quant.pop("no_generative", False)
    options = ConvertOptions.of(
        formats=formats, inputs=inputs, batch_size=batch_size, seed=seed, shapes=parse_shapes(shapes), opset=opset,
        atol=parse_tolerance_overrides(atol, "atol"), rtol=parse_tolerance_overrides(rtol, "rtol"),
        unsafe=unsafe, custom_objects=custom_objects, timeout=timeout, target_runtime=target_runtime,
        devices=devices, force=force, truth=not no_truth, allow_nonfinite_inputs=allow_nonfinite_inputs, **quant,
    )
    result = run_convert(model, out_dir, options, progress=_progress(quiet))
    click.echo(render(result), err=json_path == "-")
    if explain:
        _explain(model, result, quant, unsafe, quiet)
    from edgekit.report.write import write_convert_reports

    written = write_convert_reports(result, model, json_path, md_path, html_path)
    if written:
        click.echo("reports: " + ", ".join(written), err=True)
    sys.exit(result.exit_code)


def _explain(model: str, result: Any, quant: dict[str, Any], unsafe: bool, quiet: bool) -> None:
    """Per-layer reports for the int8 TFLite and QDQ ONNX artifacts of a conversion."""
    from edgekit.quantize.explain import debug_quant, render as render_layers

    if not quant.get("calibration"):
        click.echo("\n--explain needs --calibration: no per-layer report", err=True)
        return
    families = sorted({(r.recipe.family, r.recipe.mode) for r in result.rows if r.recipe})
    for family, mode in families:
        if (family, mode) not in (("tflite", "int8"), ("onnx", "static")):
            continue
        res = debug_quant(model, quant["calibration"], None, False, quant.get("calibration_samples", 200),
                          unsafe=unsafe, progress=_progress(quiet), fmt=family)
        click.echo(f"\nper-layer error, {family} {mode} (worst first):")
        click.echo(render_layers(res, top=8))


QUANT_OPTIONS = [
    click.option("--quantize", default=None, metavar="MODES",
                 help="TFLite quantized artifacts: dynamic, float16, int8, int16x8, int4 (blockwise, block 32; "
                      "int4:128 for 128), comma-separated; or auto (a precision per Keras layer, int4/int8/float, "
                      "chosen to the budget)."),
    click.option("--quantize-recipe", default=None, metavar="FILE.toml",
                 help="A TFLite precision per Keras layer by hand: [layers] \"pattern\" = \"int4|int8|float\", "
                      "default = ... (see the README)."),
    click.option("--quantize-engine", default=None, type=click.Choice(["litert-quantizer", "converter"]),
                 help="Who makes TFLite recipes: the LiteRT Quantizer from the float file (default), or the "
                      "TFLite converter's post-training quantization (no int4)."),
    click.option("--kernels", default=None, metavar="LIST",
                 help="LiteRT CPU kernel sets each quantized .tflite must pass on: xnnpack, reference "
                      "(default: both; each is its own cell)."),
    click.option("--onnx-quantize", default=None, metavar="MODES",
                 help="ONNX Runtime quantized artifacts: dynamic, static (QDQ), int4 (MatMulNBits, block 32; "
                      "int4:128)."),
    click.option("--io-dtype", default="float32", show_default=True, type=click.Choice(["float32", "int8", "int16"]),
                 help="Inputs/outputs of int8 (int8) and int16x8 (int16) models; float32 quantizes inside the model."),
    click.option("--calibration", default=None, metavar="DATA",
                 help="Calibration data: .npz (arrays by input name), .npy, .csv, a folder of images, digits, "
                      "or random (not meaningful)."),
    click.option("--calibration-samples", default=200, show_default=True, type=click.IntRange(1, 100000),
                 help="Samples drawn (deterministically) from the calibration data."),
    click.option("--calibration-method", default=None, type=click.Choice(["minmax", "entropy", "percentile"]),
                 help="ONNX static quantization's range calibration (default minmax)."),
    click.option("--eval-data", default=None, metavar="DATA",
                 help="Labelled data (.npz with inputs by name or x, labels as y; or digits): the task metric "
                      "per artifact and its drop from the model."),
    click.option("--max-accuracy-drop", default=None, type=click.FloatRange(0), metavar="POINTS",
                 help="Gate quantized artifacts on the --eval-data metric instead of SNR/top-1 (exit 3 on a breach)."),
    click.option("--explain", is_flag=True,
                 help="After the matrix, the per-layer error of the int8 TFLite and QDQ ONNX artifacts (see debug-quant)."),
]


def _with_quant_options(cmd: click.Command) -> click.Command:
    """Add the quantization options to an existing command (click appends them in order)."""
    for opt in QUANT_OPTIONS:
        opt(cmd)
    return cmd


_with_quant_options(convert)
for _opt in (
    click.option("--task", default=None, type=click.Choice(["causal-lm"]),
                 help="Export a keras-hub backbone as its causal LM (a model with call_with_cache is one already)."),
    click.option("--max-cache-length", default=None, type=int, metavar="N",
                 help="Positions of a generative decoder's KV cache (default: the model's max_sequence_length, "
                      "at most 1024)."),
    click.option("--tokenizer", default=None, metavar="DIR",
                 help="keras-hub tokenizer assets (tokenizer.save_assets) to copy beside the artifacts: "
                      "edgekit generate --prompt TEXT then works."),
    click.option("--no-generative", is_flag=True,
                 help="No generate.tflite/generate.onnx decoders for a causal LM (the single-pass artifacts only)."),
):
    _opt(convert)


@cli.command("quantize")
@click.argument("model", metavar="MODEL")
@click.option("--out", "-o", "out_dir", default="edgekit-quant", show_default=True, metavar="DIR",
              help="Output directory for the artifacts and manifest.json.")
@click.option("--to", "formats", default="tflite", show_default=True, metavar="LIST",
              help="Float artifacts made alongside, as the size and accuracy reference.")
@click.option("--inputs", "-i", default=None, metavar="FILE", help="Inputs to compare on (default: random).")
@click.option("--batch-size", default=8, show_default=True, type=int, help="Batch size of random inputs.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of random inputs.")
@click.option("--unsafe", is_flag=True, help=UNSAFE_HELP)
@click.option("--timeout", default=600.0, show_default=True, type=float, metavar="SECONDS",
              help="Limit for each conversion and each runtime check.")
@click.option("--force", is_flag=True, help="Write into a non-empty --out directory that edgekit did not make.")
@click.option("--quiet", "-q", is_flag=True, help=QUIET_HELP)
def quantize_cmd(model: str, out_dir: str, formats: str, inputs: str | None, batch_size: int, seed: int,
                 unsafe: bool, timeout: float, force: bool, quiet: bool, **quant: Any) -> None:
    """Quantize MODEL only (default: TFLite dynamic, float16 and int8) and show what each mode costs."""
    _needs_converter("quantize")
    from edgekit.pipeline import convert as run_convert
    from edgekit.report.matrix import render

    if not quant.get("quantize") and not quant.get("onnx_quantize"):
        quant["quantize"] = "dynamic,float16,int8"
    explain = quant.pop("explain", False)
    result = run_convert(model, out_dir, formats=formats, inputs=inputs, batch_size=batch_size, seed=seed,
                         unsafe=unsafe, timeout=timeout, progress=_progress(quiet), force=force, **quant)
    click.echo(render(result))
    if explain:
        _explain(model, result, quant, unsafe, quiet)
    sys.exit(result.exit_code)


_with_quant_options(quantize_cmd)


@cli.command()
@click.option("--out", "-o", "out_dir", default="edgekit-demo", show_default=True, metavar="DIR",
              help="Where the trained model and its artifacts go.")
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(1, 500), help="Training epochs.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the data split and the weights.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines; only the matrix.")
def demo(out_dir: str, epochs: int, seed: int, quiet: bool) -> None:
    """Train the guide's MLP on the built-in digits, then convert and check it.

    Needs no files and no network: scikit-learn ships the digits (8x8 images, upsampled
    to 28x28 for the 784-input MLP). The test images are the check inputs, so top-1
    agreement between the model and each artifact is measured on real data.
    """
    _needs_converter("demo")
    from pathlib import Path

    from edgekit.models.digits import load_digits
    from edgekit.pipeline import check_out_dir, convert as run_convert
    from edgekit.report.matrix import render
    from edgekit.worker import default_pool

    say = _progress(quiet)
    out = Path(out_dir)
    check_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / "trained_mlp.keras"
    say(f"training the guide's MLP on digits for {epochs} epochs")
    info = default_pool().tf.call("edgekit.models.training:train_digits_mlp", str(model_path), epochs, seed,
                                  on_progress=say, tag="train")
    say(f"trained: test accuracy {100 * info['test_accuracy']:.2f}% on {info['n_test']} held-out digits")
    _, _, x_test, _ = load_digits(seed=seed)
    result = run_convert(str(model_path), out / "artifacts", input_arrays={"pixels": x_test[:64]},
                         input_label="64 held-out digits test images", progress=say)
    click.echo(render(result))
    click.echo(f"\nKeras model test accuracy: {100 * info['test_accuracy']:.2f}%; trained model: {model_path}")
    sys.exit(result.exit_code)


@cli.group("models", invoke_without_command=True)
@click.pass_context
def models_cmd(ctx: click.Context) -> None:
    """List the user guide's reference models (use them as builtin:NAME)."""
    if ctx.invoked_subcommand is not None:
        return
    from edgekit.models.zoo import BUILDERS

    for name, fn in BUILDERS.items():
        doc = (fn.__doc__ or "").strip().splitlines()[0]
        click.echo(f"{name:10} {doc}")


@models_cmd.command("show")
@click.argument("name")
def models_show(name: str) -> None:
    """Print NAME's Keras summary: layers, output shapes, parameter counts."""
    _needs_converter("models show")
    from edgekit.errors import InputError
    from edgekit.models.zoo import BUILDERS
    from edgekit.worker import default_pool

    if name not in BUILDERS:
        raise InputError(f"unknown model {name!r}; choose one of: {', '.join(BUILDERS)}")
    res = default_pool().tf.call("edgekit.models.training:summary", name, timeout=300, tag="summary")
    click.echo(res["text"])
    click.echo(f"{name}: {res['params']:,} parameters")


@cli.command("train")
@click.option("--recipe", default=None, metavar="FILE.toml",
              help="TOML with these flags' names and value forms (see the README); flags given here win.")
@click.option("--model", default=None, help="A guide model name (mlp, cnn, ...) or a .keras/.h5 file.  [default: mlp]")
@click.option("--data", default=None, metavar="DATA",
              help="digits, data.npz (x or inputs by name, y), x.npy,y.npy, or data.csv (see --label-column).  [default: digits]")
@click.option("--label-column", default=None, help="CSV label column.  [default: label]")
@click.option("--optimizer", default=None, type=click.Choice(["adam", "adamw", "sgd", "rmsprop"]), help="[default: adam]")
@click.option("--learning-rate", default=None, type=float, help="[default: 0.001]")
@click.option("--weight-decay", default=None, type=float, help="AdamW weight decay.  [default: 0.004]")
@click.option("--momentum", default=None, type=float, help="SGD momentum.  [default: 0.9]")
@click.option("--loss", multiple=True, metavar="[OUTPUT=]LOSS",
              help="categorical_crossentropy, sparse_categorical_crossentropy, binary_crossentropy, mse, mae, "
                   "huber; repeat as OUTPUT=LOSS for one loss per output.  [default: categorical_crossentropy]")
@click.option("--metrics", default=None, help="Comma-separated: accuracy, mae, auc, precision, recall.  [default: accuracy]")
@click.option("--epochs", default=None, type=int, help="[default: 30]")
@click.option("--batch-size", default=None, type=int, help="[default: 32]")
@click.option("--validation-split", default=None, type=float, help="[default: 0.1]")
@click.option("--test-split", default=None, type=float, help="Held out before training, scored at the end.  [default: 0.2]")
@click.option("--seed", default=None, type=int, help="Seed of the data split, the weights and shuffling.  [default: 0]")
@click.option("--loop", default=None, type=click.Choice(["fit", "custom"]),
              help="fit, or custom: an explicit tf.GradientTape step.  [default: fit]")
@click.option("--clip-norm", default=None, type=float, help="Clip gradients to this global norm.")
@click.option("--early-stopping", "early_stopping", default=None, type=int, metavar="PATIENCE",
              help="Stop after PATIENCE epochs without improvement of --monitor (best weights restored).")
@click.option("--reduce-lr", "reduce_lr", default=None, type=int, metavar="PATIENCE",
              help="Multiply the learning rate by --lr-factor after PATIENCE epochs without improvement.")
@click.option("--lr-factor", default=None, type=float, help="--reduce-lr's multiplier.  [default: 0.5]")
@click.option("--min-lr", default=None, type=float, help="--reduce-lr's lower bound.  [default: 1e-06]")
@click.option("--monitor", default=None, help="Quantity the callbacks watch.  [default: val_loss]")
@click.option("--checkpoint", is_flag=True, help="Save the best model (by --monitor) as best.keras.")
@click.option("--stop-at", default=None, metavar="METRIC=VALUE", help="Stop when a metric reaches a value (e.g. val_accuracy=0.97).")
@click.option("--out", "-o", "out", default=None, metavar="DIR",
              help="Where model.keras, history.json and history.png go.  [default: edgekit-train]")
@click.option("--quiet", "-q", is_flag=True, help=QUIET_HELP)
def train_cmd(recipe: str | None, checkpoint: bool, quiet: bool, **flags: Any) -> None:
    """Train a model as the user guide does, with Keras; writes model.keras, history.json and
    history.png, and scores the held-out test split."""
    _needs_converter("train")
    from edgekit.train import run_training
    from edgekit.train_recipe import build
    from edgekit.units import metric_text, metrics_in_percent

    loss = flags.pop("loss")  # () when not given
    flags["loss"] = None if not loss else (loss[0] if len(loss) == 1 and "=" not in loss[0] else list(loss))
    cfg, out_dir = build(recipe, {**flags, "checkpoint": True if checkpoint else None})
    res = run_training(cfg, out_dir, progress=_progress(quiet))
    test = ", ".join(f"{k} {metric_text(k, v)}" for k, v in metrics_in_percent(res["test"]).items())
    stopped = f", stopped by {res['stopped_by']}" if res["stopped_by"] else ""
    click.echo(f"trained {res['epochs_run']} epoch(s) in {res['train_seconds']:.1f} s{stopped}; test: {test}")
    click.echo(f"model: {res['model']}; history: {Path(out_dir) / 'history.json'}, {Path(out_dir) / 'history.png'}")


@cli.command("evaluate")
@click.argument("target", metavar="ARTIFACT|DIR")
@click.option("--data", required=True, metavar="DATA",
              help="Labelled data: digits, or .npz with arrays by input name (or x) and labels as y.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON instead of a table.")
def evaluate_cmd(target: str, data: str, as_json: bool) -> None:
    """Score an artifact, or every artifact of a conversion directory, on labelled data.

    Metrics are computed the same way for every artifact: accuracy, loss, AUC, precision,
    recall for classifiers; MAE and MSE otherwise."""
    _needs_converter("evaluate", None if data == "digits" else target)
    import json as _json

    from edgekit.evaluate import evaluate

    rows = evaluate(target, data)
    if as_json:
        click.echo(_json.dumps(rows, indent=1))
        return
    from edgekit.units import is_percent_metric

    keys = [k for k in rows[0] if k not in ("artifact", "samples", "unscored_outputs")]
    heads = [k + (" %" if is_percent_metric(k) else "") for k in keys]
    w = [max(10, len(h)) for h in heads]
    click.echo(f"{'artifact':<40} " + " ".join(f"{h:>{n}}" for h, n in zip(heads, w)))
    for r in rows:
        click.echo(f"{Path(r['artifact']).name:<40} " + " ".join(
            f"{r[k]:>{n}.2f}" if is_percent_metric(k) else f"{r[k]:>{n}.4f}" for k, n in zip(keys, w)))
    if rows[0].get("unscored_outputs"):
        click.echo(f"not scored (no labels given): {', '.join(rows[0]['unscored_outputs'])}")
    click.echo(f"({rows[0]['samples']} samples of {data})")


@cli.command("predict")
@click.argument("artifact")
@aliased("--inputs", "-i", "data", aliases=("--data",), required=True, metavar="FILE",
         help=".npz (arrays by input name) or .npy (one input).")
@click.option("--out", "-o", "out_path", required=True, metavar="FILE.npz",
              help="Where the outputs go (and NAME_classes for classifier outputs).")
def predict_cmd(artifact: str, data: str, out_path: str) -> None:
    """Write ARTIFACT's raw outputs on --inputs to an .npz (and NAME_classes for classifiers)."""
    _needs_converter("predict", artifact)
    import io

    import numpy as np

    from edgekit.evaluate import predict
    from edgekit.fsutil import atomic_write_bytes

    res = predict(artifact, data)
    buf = io.BytesIO()
    np.savez(buf, **res)
    atomic_write_bytes(out_path, buf.getvalue())
    click.echo(f"{out_path}: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in res.items()))


@cli.command("generate")
@click.argument("artifact")
@click.option("--prompt-ids", default=None, metavar="IDS", help="The prompt as token ids: 5,17,42.")
@click.option("--prompt", "prompt_text", default=None, metavar="TEXT",
              help="The prompt as text (needs the tokenizer convert copied beside the artifact: --tokenizer).")
@click.option("--max-new-tokens", default=16, show_default=True, type=int, help="Tokens to generate.")
@click.option("--temperature", default=0.0, show_default=True, type=float, help="0: greedy; > 0: sample.")
@click.option("--top-k", default=None, type=int, help="Sample from the k most likely tokens only.")
@click.option("--seed", default=None, type=int, help="Seed of the sampling.")
@click.option("--stop-ids", default=None, metavar="IDS", help="Stop after generating one of these ids: 2,50256.")
@click.option("--kernels", default="xnnpack", show_default=True, type=click.Choice(["xnnpack", "builtin", "reference"]),
              help="LiteRT kernel set (TFLite decoders).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def generate_cmd(artifact: str, prompt_ids: str | None, prompt_text: str | None, max_new_tokens: int,
                 temperature: float, top_k: int | None, seed: int | None, stop_ids: str | None, kernels: str,
                 as_json: bool) -> None:
    """Generate with a generative ARTIFACT (generate.tflite or generate.onnx), without TensorFlow.

    Greedy by default; --temperature, --top-k and --seed sample. The JSON holds the
    generated ids, the prefill time and the decode time per token."""
    import json

    from edgekit.errors import InputError
    from edgekit.generate import load_decoder

    if (prompt_ids is None) == (prompt_text is None):
        raise InputError("give the prompt as --prompt-ids 5,17,42 or as --prompt TEXT (one of the two)")
    tokenizer = None
    if prompt_text is not None:
        from edgekit.text_tokenizer import load_beside

        tokenizer = load_beside(artifact)
        ids = tokenizer.encode(prompt_text)
    else:
        ids = _id_list(prompt_ids, "--prompt-ids")
    stops = _id_list(stop_ids, "--stop-ids") if stop_ids else []
    with load_decoder(artifact, kernels=kernels) as dec:
        res = dec.generate(ids, max_new_tokens, temperature=temperature, top_k=top_k, seed=seed, stop_ids=stops)
    res = {"prompt": ids, **res}
    if tokenizer is not None:
        res["text"] = tokenizer.decode(res["generated"])
    if as_json:
        click.echo(json.dumps(res))
        return
    click.echo(" ".join(map(str, res["generated"])))
    if tokenizer is not None:
        click.echo(res["text"])
    dec_ms = res["decode_ms_per_token"]
    click.echo(f"prefill {res['prefill_ms']:.2f} ms ({len(ids)} tokens); decode "
               f"{'-' if dec_ms is None else f'{dec_ms:.2f}'} ms/token" + ("; stopped at a stop id" if res["stopped"] else ""),
               err=True)


def _id_list(text: str | None, flag: str) -> list[int]:
    from edgekit.errors import InputError

    try:
        ids = [int(x) for x in (text or "").replace(" ", "").split(",") if x != ""]
    except ValueError:
        raise InputError(f"{flag} {text!r}: expected comma-separated token ids, e.g. 5,17,42") from None
    if not ids and flag == "--prompt-ids":
        raise InputError(f"{flag}: the prompt needs at least one token id")
    return ids


@cli.command("formats")
def formats_cmd() -> None:
    """List the export formats, their files and the runtime that checks each."""
    from edgekit.converters import FORMATS
    from edgekit.runtimes import unavailable_reason

    for f in FORMATS.values():
        why = unavailable_reason(f.runtime)
        state = "available" if why is None else f"unavailable: {why}"
        click.echo(f"{f.name:12} {f.filename:18} checked by {f.runtime:14} {state}  ({f.description})")


@cli.command("debug-quant")
@click.argument("model", metavar="MODEL")
@click.option("--calibration", default=None, metavar="DATA", help="Calibration data (as for convert --calibration).")
@click.option("--calibration-samples", default=200, show_default=True, type=click.IntRange(2, 100000),
              help="Samples drawn (deterministically) from the calibration data.")
@click.option("--selective/--no-selective", default=True, show_default=True,
              help="Search the layers to keep in float until int8 meets its default criteria.")
@click.option("--out", "-o", "out_dir", default="edgekit-debug-quant", show_default=True, metavar="DIR",
              help="Where model_int8_selective.tflite goes.")
@click.option("--format", "fmt", default="tflite", show_default=True, type=click.Choice(["tflite", "onnx"]),
              help="tflite: TFLite's quantization debugger (and --selective); onnx: ONNX Runtime's QDQ comparison.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option("--unsafe", is_flag=True, help=UNSAFE_HELP)
@click.option("--quiet", "-q", is_flag=True, help=QUIET_HELP)
def debug_quant_cmd(model: str, calibration: str | None, calibration_samples: int, selective: bool, out_dir: str,
                    fmt: str, as_json: bool, unsafe: bool, quiet: bool) -> None:
    """Per-layer error of MODEL's int8 TFLite model (layers named as in Keras, worst first),
    and which layers to keep in float so int8 passes. Exit 3 if even that fails."""
    _needs_converter("debug-quant")
    import json

    from edgekit.quantize.explain import debug_quant, render, require_calibration

    res = debug_quant(model, require_calibration(calibration), out_dir, selective and fmt == "tflite",
                      calibration_samples, unsafe=unsafe, progress=_progress(quiet), fmt=fmt)
    click.echo(json.dumps(res, indent=1, default=str) if as_json else render(res))
    sys.exit(0 if res["passed"] or not selective else 3)


@cli.command("verify")
@click.argument("out_dir", metavar="DIR")
def verify_cmd(out_dir: str) -> None:
    """Recheck DIR's artifacts against its manifest.json (exists, sha256). Exit 1 on any mismatch."""
    from edgekit.verify import verify

    res = verify(out_dir)
    for p in res["problems"]:
        click.echo(f"  {p}")
    if res["leftovers"]:
        click.echo(f"  staging leftovers of an interrupted run (the next run removes them): {', '.join(res['leftovers'])}")
    click.echo(f"{out_dir}: {res['checked']} artifacts checked, " + ("all match the manifest" if res["ok"] else f"{len(res['problems'])} problem(s)"))
    sys.exit(0 if res["ok"] else 1)


def _register_device_commands() -> None:
    from edgekit.cli.device import bench, inspect, run

    cli.add_command(run)
    cli.add_command(bench)
    cli.add_command(inspect)
    from edgekit.cli.check import check_cmd, report_group
    from edgekit.cli.devices import devices_group

    cli.add_command(check_cmd)
    cli.add_command(report_group)
    cli.add_command(devices_group)


_register_device_commands()
from edgekit.cli import compare as _compare  # noqa: E402,F401 - registers 'edgekit compare'


def _sigterm_as_interrupt() -> None:
    """SIGTERM unwinds like Ctrl-C: staging is removed, workers stop, nothing half-written."""
    import signal

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (embedded use)
        pass


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors, distinct exit codes, no tracebacks for user errors."""
    _sigterm_as_interrupt()
    try:
        rv = cli.main(args=argv, prog_name="edgekit", standalone_mode=False)
    except EdgekitError as exc:
        # one line, whatever a library put in the message (h5py's span several)
        msg = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
        click.echo(f"edgekit: error: {msg}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("edgekit: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        msg = exc.format_message()
        ctx_name = getattr(getattr(exc, "ctx", None), "command_path", "edgekit")
        click.echo(f"edgekit: error: {msg} (see '{ctx_name} --help')", err=True)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        click.echo("edgekit: interrupted", err=True)
        sys.exit(130)
    sys.exit(rv or 0)
