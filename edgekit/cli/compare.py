"""``edgekit compare MODEL ARTIFACT...``: the verdict for files edgekit did not write."""
from __future__ import annotations

import sys

import click

from edgekit.cli import _progress, cli


@cli.command("compare")
@click.argument("model", metavar="MODEL")
@click.argument("artifacts", metavar="ARTIFACT...", nargs=-1, required=True)
@click.option("--inputs", default=None, metavar="FILE",
              help="Inputs to check with: .npz with one array per input name (or .npy for one input). "
                   "Default: seeded random inputs.")
@click.option("--batch-size", default=2, show_default=True, type=int, help="Batch size of random inputs.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of random inputs.")
@click.option("--shape", "shapes", multiple=True, metavar="NAME=D1,D2",
              help="Dimensions (after the batch) of an input whose shape is not fixed; repeatable.")
@click.option("--atol", multiple=True, metavar="[OUTPUT=]X", help="Absolute tolerance (every output or one); repeatable.")
@click.option("--rtol", multiple=True, metavar="[OUTPUT=]X", help="Tolerance relative to max|model output|; repeatable.")
@click.option("--policy", default=None, metavar="NAME",
              help="Tolerance policy for every artifact: float32, exact, float16, dynamic_int8, int8, int16x8 "
                   "(default: float32 for .tflite/.onnx, exact for SavedModel/.keras/.h5; quantized files need one).")
@click.option("--no-truth", "no_truth", is_flag=True, help="Do not judge against a float64 twin of the model.")
@click.option("--allow-nonfinite-inputs", is_flag=True, help="Accept --inputs that contain NaN or inf.")
@click.option("--json", "json_path", default=None, metavar="FILE", help="Also write the result as JSON to FILE.")
@click.option("--unsafe", is_flag=True, help="Allow models whose loading runs stored code (Lambda layers).")
@click.option("--custom-objects", default=None, metavar="MODULE.py", help="Module defining the model's custom layers.")
@click.option("--timeout", default=600.0, show_default=True, type=float, metavar="SECONDS")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines; only the matrix.")
def compare_cmd(model: str, artifacts: tuple[str, ...], inputs: str | None, batch_size: int, seed: int,
                shapes: tuple[str, ...], atol: tuple[str, ...], rtol: tuple[str, ...], policy: str | None,
                no_truth: bool, allow_nonfinite_inputs: bool, json_path: str | None, unsafe: bool,
                custom_objects: str | None, timeout: float, quiet: bool) -> None:
    """Check ARTIFACT files (.tflite, .onnx, SavedModel, .keras, .h5; from any tool) against MODEL.

    Same inputs, name binding, tolerance policy and matrix as 'edgekit convert'. Exit 0 when
    every artifact passes, 3 when any fails its tolerance, 1 when one cannot be run, 2 on bad input.
    """
    from edgekit.compare_files import compare, render
    from edgekit.feeds import parse_shapes
    from edgekit.fsutil import atomic_write_json
    from edgekit.pipeline import parse_tolerance_overrides

    result = compare(model, list(artifacts), inputs=inputs, atol=parse_tolerance_overrides(atol, "atol"),
                     rtol=parse_tolerance_overrides(rtol, "rtol"), policy=policy, batch_size=batch_size, seed=seed,
                     shapes=parse_shapes(shapes), truth=not no_truth, allow_nonfinite_inputs=allow_nonfinite_inputs,
                     unsafe=unsafe, custom_objects=custom_objects, timeout=timeout, progress=_progress(quiet))
    click.echo(render(result))
    if json_path:
        atomic_write_json(json_path, result.to_json())
    sys.exit(result.exit_code)
