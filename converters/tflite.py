"""TFLite float32 with builtin operators only.

Keras 3 recurrent layers lower to TensorList ops that only the Flex delegate runs (which
ai-edge-litert lacks), so models with LSTM/GRU/SimpleRNN are converted from an unrolled
copy with the same weights: builtins-only, dynamic batch, same numbers. A file that still
contains Flex or custom ops is a failed conversion, never a success.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from edgekit.converters.base import ExportContext, Exporter, first_line
from edgekit.errors import ConversionError, NotApplicable
from edgekit.fsutil import atomic_write_bytes


def convert_saved_model(saved_model_dir: str, configure: Any = None) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if configure is not None:
        configure(converter)
    return converter.convert()


def float_saved_model(ctx: ExportContext, workdir: str, shapes: dict[str, list[int]] | None = None) -> tuple[str, list[str]]:
    """A SavedModel of the model as TFLite should see it (unrolled if recurrent, at fixed
    ``shapes`` when given), written once per run and shape into ``workdir``."""
    from edgekit.converters.saved_model import write_saved_model
    from edgekit.models.keras_io import unrolled

    notes = ["recurrent layers unrolled for builtin-only TFLite"] if ctx.spec.has_rnn else []
    key = "tflite_saved_model_dir" + ("" if not shapes else repr(sorted(shapes.items())))
    if key not in ctx.cache:
        d = Path(workdir) / ("tflite_saved_model" if not shapes else f"tflite_saved_model_fixed{len(ctx.cache)}")
        from edgekit.converters.lowering import builtin_lowering

        model = unrolled(ctx.model, shapes) if ctx.spec.has_rnn else ctx.model
        with builtin_lowering():  # new-axis slices and rolls as builtins: open lengths stay open
            write_saved_model(model, ctx.spec, d, shapes)
        ctx.cache[key] = str(d)
    return ctx.cache[key], notes


def check_builtin_only(buf: bytes) -> dict[str, Any]:
    from edgekit.runtimes.tflite_ops import list_ops

    ops = list_ops(buf)
    bad = sorted({o.name for o in ops if o.custom})
    if bad:
        flex = [b for b in bad if b.startswith("Flex")]
        kind = "Flex (Select TF) ops" if flex else "custom ops"
        raise ConversionError(
            f"TFLite file contains {kind} {', '.join(bad[:6])}: LiteRT without the Flex delegate cannot run it"
        )
    return {"ops": {o.name: o.count for o in ops}}


def recipe_configurer(recipe: Any, calibration: dict[str, Any] | None, ctx: ExportContext) -> Any:
    """A function that sets a TFLiteConverter up for ``recipe`` (None: float32)."""
    import numpy as np
    import tensorflow as tf

    from edgekit.quantize.recipes import Approach

    if recipe is None:
        return None
    # full-integer modes: the converter's op set and the integer type of their inputs/outputs
    full_integer = {Approach.INT8: ("TFLITE_BUILTINS_INT8", "int8"),
                    Approach.INT16X8: ("EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8", "int16")}
    a = recipe.approach
    if recipe.needs_calibration and not calibration:
        raise ConversionError(f"TFLite {recipe.mode} needs calibration data")

    def representative() -> Any:
        # Keyed by signature input name: TFLite may order inputs differently from Keras,
        # and a list in Keras order then feeds the wrong tensors (FIELD-NOTES).
        n = int(next(iter(calibration.values())).shape[0])
        for i in range(n):
            yield {s.name: np.asarray(calibration[s.name][i:i + 1], dtype=s.dtype) for s in ctx.spec.inputs}

    float_inputs = all(np.dtype(s.dtype).kind == "f" for s in ctx.spec.inputs)
    if a is Approach.INT16X8 and not float_inputs:
        ints = [f"{s.name}: {s.dtype}" for s in ctx.spec.inputs if np.dtype(s.dtype).kind != "f"]
        raise ConversionError(
            f"TFLite int16x8 cannot calibrate integer model inputs ({', '.join(ints)}): use int8 or dynamic for this model"
        )

    def configure(c: Any) -> None:
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        if a is Approach.FLOAT16:
            c.target_spec.supported_types = [tf.float16]
        elif a in full_integer:
            ops_name, int_io = full_integer[a]
            c.representative_dataset = representative
            c.target_spec.supported_ops = [getattr(tf.lite.OpsSet, ops_name)]
            if recipe.io_dtype == int_io:
                if float_inputs:
                    c.inference_input_type = getattr(tf, int_io)
                c.inference_output_type = getattr(tf, int_io)
        elif a is not Approach.DYNAMIC_INT8:
            raise ConversionError(f"TFLite has no mode {recipe.mode}")

    return configure


def _fixed_note(ctx: ExportContext, shapes: dict[str, list[int]], why: str) -> str:
    dims = ", ".join(f"{s.name} {tuple(['batch', *shapes[s.name]])}".replace("'", "") for s in ctx.spec.inputs
                     if s.variable_dims)
    return f"exported at a fixed size: {dims} ({why}); choose it with --shape"


class TFLiteExporter(Exporter):
    """Float32 (or a quantization recipe) with builtin ops only. Open dimensions (sequence
    lengths, image sizes) stay dynamic where builtins can express the graph; where they
    cannot (recurrent loops, decoder masks that need Flex ops), the file is converted at the
    run's check size, which the row states."""

    name = "tflite"
    allowed_options = frozenset({"recipe", "calibration", "saved_model_dir", "check_shapes"})

    def _write(self, ctx: ExportContext, path: Path, options: dict[str, Any]) -> dict[str, Any]:
        from edgekit.models.keras_io import has_variable_rnn
        from edgekit.quantize.recipes import Recipe

        workdir = ctx.cache.get("workdir") or tempfile.mkdtemp(prefix="edgekit-tf-")
        ctx.cache["workdir"] = workdir
        recipe = Recipe.from_json(options["recipe"]) if options.get("recipe") else None
        configure = recipe_configurer(recipe, options.get("calibration"), ctx)
        fixable = options.get("check_shapes") and any(s.variable_dims for s in ctx.spec.inputs)
        if fixable and ctx.spec.has_rnn and has_variable_rnn(ctx.model):
            shapes = options["check_shapes"]
            buf, notes = self._convert(ctx, workdir, configure, None, shapes)
            notes.append(_fixed_note(ctx, shapes, "unrolling a recurrent layer needs a fixed length"))
        else:
            try:
                buf, notes = self._convert(ctx, workdir, configure, options.get("saved_model_dir"), None)
            except ConversionError as exc:
                if not fixable:
                    raise
                shapes = options["check_shapes"]
                buf, notes = self._convert(ctx, workdir, configure, None, shapes)
                notes.append(_fixed_note(ctx, shapes, f"dynamic: {exc}"))
            else:
                shapes = None
        meta = check_builtin_only(buf)
        atomic_write_bytes(path, buf)
        meta["notes"] = notes
        if shapes:
            meta["fixed_shapes"] = shapes
        return meta

    @staticmethod
    def _convert(ctx: ExportContext, workdir: str, configure: Any, given: str | None,
                 shapes: dict[str, list[int]] | None) -> tuple[bytes, list[str]]:
        """One conversion attempt; a file with Flex or custom ops is a ConversionError."""
        try:
            if given and not shapes and not ctx.spec.has_rnn and Path(given).is_dir():
                # the run's own SavedModel artifact, already checked: same float graph
                sm_dir, notes = given, []
            else:
                sm_dir, notes = float_saved_model(ctx, workdir, shapes)
            buf = convert_saved_model(sm_dir, configure)
        except ConversionError:
            raise
        except Exception as exc:  # noqa: BLE001 - the converter raises many types
            msg = first_line(exc)
            op = re.search(r"16x8-bit not yet supported for op: '?(\w+)", msg)
            if op:  # a mode this model cannot take, not a failure
                raise NotApplicable(f"int16x8: no int16 kernel for {op.group(1)} in the TFLite converter; "
                                    f"use int8 or dynamic for this model") from None
            raise ConversionError(f"TFLite conversion failed: {msg}") from None
        check_builtin_only(buf)
        return buf, notes
