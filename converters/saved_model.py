"""SavedModel with a ``serving_default`` signature whose inputs and outputs carry the
Keras names (TF Serving clients address tensors by these names)."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

from edgekit.converters.base import ExportContext, Exporter, first_line
from edgekit.errors import ConversionError
from edgekit.specs import ModelSpec


def serving_fn(model: Any, spec: ModelSpec) -> Any:
    """A function of named tensors returning a dict of named outputs."""
    from edgekit.models.keras_io import call_symbolic

    in_names, out_names = spec.input_names, spec.output_names

    def fn(*tensors: Any) -> dict[str, Any]:
        return call_symbolic(model, dict(zip(in_names, tensors)), in_names, out_names)

    return fn


def input_signature(spec: ModelSpec, shapes: Any = None, batch: int | None = None) -> list[Any]:
    """Signature of named inputs with a dynamic batch (or ``batch``); ``shapes`` (per input
    name, the dimensions after the batch) fixes what the model leaves open."""
    import tensorflow as tf

    shapes = shapes or {}
    return [tf.TensorSpec([batch] + list(shapes.get(s.name, s.shape[1:])), tf.as_dtype(s.dtype), name=s.name)
            for s in spec.inputs]


def write_saved_model(model: Any, spec: ModelSpec, path: Path, shapes: Any = None) -> str:
    """Write ``model`` as a SavedModel at ``path``; return which writer was used.

    Keras' ``model.export``/``ExportArchive`` store every weight twice (keras-team/keras
    #23553: ``variables/N`` holds the Keras wrappers, ``_all_variables/N`` the tf.Variables
    the traced function captured), doubling the file and TF Serving's memory. Tracking the
    underlying tf.Variables on a plain ``tf.Module`` lets TensorFlow's identity dedup store
    each once. Models owning other resources (lookup tables) fall back to ExportArchive.
    """
    import tensorflow as tf

    sig = input_signature(spec, shapes)
    endpoint = _positional(serving_fn(model, spec), spec.input_names)
    try:
        module = getattr(model, "trackable_root", None)  # a SavedModel input re-saved
        if module is None:
            module = tf.Module()
            module._edgekit_variables = [getattr(v, "value", v) for v in model.variables]
        module.serve = tf.function(endpoint, input_signature=sig, autograph=False)
        tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve.get_concrete_function()})
        return "tf.Module"
    except Exception:  # noqa: BLE001 - untracked resources: use Keras' own writer
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        if getattr(model, "trackable_root", None) is not None:
            raise
    from keras.export import ExportArchive

    archive = ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", tf.function(endpoint, input_signature=sig, autograph=False))
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the endpoint summary
        archive.write_out(str(path))
    return "keras ExportArchive (weights stored twice, keras-team/keras#23553)"


def _positional(fn: Any, names: list[str]) -> Any:
    """A function whose parameters are named like the inputs (signature input names)."""
    idents: list[str] = []
    for i, n in enumerate(names):
        ident = _py_ident(n, i)
        idents.append(ident if ident not in idents else f"{ident}_{i}")
    params = ", ".join(idents)
    ns: dict[str, Any] = {"_fn": fn}
    exec(f"def endpoint({params}):\n    return _fn({params})\n", ns)  # noqa: S102 - our own identifiers
    return ns["endpoint"]


def _py_ident(name: str, i: int) -> str:
    ident = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    if not ident or ident[0].isdigit() or ident in {"def", "return", "lambda", "class", "import", "from", "in", "is"}:
        ident = f"input_{i}_{ident}"
    return ident


class SavedModelExporter(Exporter):
    name = "saved_model"

    def _write(self, ctx: ExportContext, path: Path, options: dict[str, Any]) -> dict[str, Any]:
        try:
            writer = write_saved_model(ctx.model, ctx.spec, path)
        except Exception as exc:  # noqa: BLE001 - TF raises many types
            raise ConversionError(f"SavedModel export failed: {first_line(exc)}") from None
        return {"writer": writer}
