"""``edgekit compare MODEL ARTIFACT...``: the verdict for files edgekit did not write."""
from __future__ import annotations

import sys

import click

from edgekit.cli import _progress, cli
from edgekit.cli.options import check_options


@cli.command("compare")
@click.argument("model", metavar="MODEL")
@click.argument("artifacts", metavar="ARTIFACT...", nargs=-1, required=True)
@check_options
@click.option("--policy", default=None, metavar="NAME",
              help="Tolerance policy for every artifact: float32, exact, float16, dynamic_int8, int8, int16x8 "
                   "(default: float32 for .tflite/.onnx, exact for SavedModel/.keras/.h5; quantized files need one).")
@click.option("--json", "json_path", default=None, metavar="FILE", help="Also write the result as JSON to FILE.")
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
    from edgekit.tolerances import parse_tolerance_overrides

    result = compare(model, list(artifacts), inputs=inputs, atol=parse_tolerance_overrides(atol, "atol"),
                     rtol=parse_tolerance_overrides(rtol, "rtol"), policy=policy, batch_size=batch_size, seed=seed,
                     shapes=parse_shapes(shapes), truth=not no_truth, allow_nonfinite_inputs=allow_nonfinite_inputs,
                     unsafe=unsafe, custom_objects=custom_objects, timeout=timeout, progress=_progress(quiet))
    click.echo(render(result))
    if json_path:
        atomic_write_json(json_path, result.to_json())
    sys.exit(result.exit_code)
