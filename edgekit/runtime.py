"""On-device inference without TensorFlow: ``edgekit.runtime.load(path).predict(inputs)``.

Needs only numpy and a runtime: LiteRT (``ai-edge-litert``, or the older ``tflite-runtime``)
for ``.tflite``, ONNX Runtime for ``.onnx``. Inputs and outputs are addressed by name; any
batch size works (tensors are resized when the shape changes); quantized models take and
return floats (quantized with the model's scale and zero point) unless ``raw_io=True``.

The TFLite path calls ``set_tensor``/``invoke``/``get_tensor`` by tensor index, resolved once
from the signature, so a call costs little more than a bare ``Interpreter.invoke``.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from edgekit.converters import format_of
from edgekit.errors import InputError, MissingDependencyError, RuntimeFailure

__all__ = ["TensorInfo", "Predictor", "load"]


@dataclass(frozen=True)
class TensorInfo:
    """A named input or output: ``shape`` has -1 for dimensions that can change."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None

    @property
    def quantized(self) -> bool:
        return self.scale is not None and self.scale != 0.0


class Closable:
    """``close()``, and use as a context manager that closes."""

    def close(self) -> None:
        pass

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Predictor(Closable):
    """A loaded model. ``predict({name: array})`` or ``predict(array)`` for one input."""

    backend: str = ""
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    def __init__(self, path: str, raw_io: bool = False) -> None:
        self.path = path
        self.raw_io = raw_io

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def _named(self, feeds: Mapping[str, np.ndarray] | np.ndarray | None, kw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if feeds is None:
            named = dict(kw)
        elif isinstance(feeds, Mapping):
            named = {**feeds, **kw}
        else:
            if len(self.inputs) != 1:
                raise InputError(f"the model has inputs {self.input_names}: pass a dict keyed by name")
            named = {self.inputs[0].name: feeds}
        missing = [n for n in self.input_names if n not in named]
        extra = [n for n in named if n not in self.input_names]
        if missing or extra:
            raise InputError(f"the model's inputs are {self.input_names}: missing {missing}, unexpected {extra}")
        return named

    def _to_input(self, info: TensorInfo, arr: Any) -> np.ndarray:
        a = np.asarray(arr)
        want = np.dtype(info.dtype)
        if a.dtype == want:
            return a
        if info.quantized and not self.raw_io and a.dtype.kind == "f":
            lo, hi = np.iinfo(want).min, np.iinfo(want).max
            return np.clip(np.round(a / info.scale) + info.zero_point, lo, hi).astype(want)
        if a.dtype.kind in "biuf" and (np.can_cast(a.dtype, want, "same_kind") or
                                       (want.kind in "iu" and a.dtype.kind in "iu")):
            return a.astype(want)
        if want.kind in "iu" and a.dtype.kind == "f" and np.all(np.mod(a, 1) == 0):
            return a.astype(want)
        raise InputError(f"input {info.name!r} expects {want}, got {a.dtype}")

    def _from_output(self, info: TensorInfo, arr: np.ndarray) -> np.ndarray:
        if info.quantized and not self.raw_io:
            return ((arr.astype(np.float32) - info.zero_point) * info.scale).astype(np.float32)
        return arr

    def predict(self, feeds: Mapping[str, np.ndarray] | np.ndarray | None = None, **kw: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    __call__ = predict


def _tflite_interpreter() -> tuple[Any, str]:
    try:
        from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found]

        return Interpreter, "tflite-runtime"
    except ImportError:
        raise MissingDependencyError(
            "no LiteRT runtime is installed: pip install ai-edge-litert (or tflite-runtime on boards that have it)"
        ) from None


def tflite_interpreter_args(path: str, threads: int | None, kernels: str) -> tuple[Any, str, dict[str, Any]]:
    """(Interpreter class, backend name, its keyword arguments) for ``path`` on a kernel path
    of ``KERNEL_PATHS``."""
    if kernels not in KERNEL_PATHS:
        raise InputError(f"unknown LiteRT kernel path {kernels!r}; choose from {', '.join(KERNEL_PATHS)}")
    Interpreter, backend = _tflite_interpreter()
    kwargs: dict[str, Any] = {"model_path": path}
    if threads:
        kwargs["num_threads"] = threads
    if kernels != "xnnpack":
        mod = __import__(Interpreter.__module__, fromlist=["OpResolverType"])
        kwargs["experimental_op_resolver_type"] = getattr(mod.OpResolverType, KERNEL_PATHS[kernels])
    return Interpreter, backend, kwargs


# LiteRT logs this from C++ on every interpreter that gets the default delegate: noise on
# every command's stderr, and nothing a user can act on.
_LITERT_NOISE = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)


@contextlib.contextmanager
def quiet_litert_log() -> Iterator[None]:
    """Capture native writes to fd 2 and pass on every line except LiteRT's INFO banner.

    Used around the calls that create the delegate (interpreter creation, tensor allocation),
    not around ``invoke``, so timing loops pay nothing.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2 (embedded interpreters)
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines = tmp.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = "".join(ln for ln in lines if ln.strip() not in _LITERT_NOISE)
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def _quant(details: Mapping[str, Any]) -> tuple[float | None, int | None]:
    scale, zp = details.get("quantization", (0.0, 0))
    if not scale:
        return None, None
    return float(scale), int(zp)


# LiteRT's CPU kernel sets: XNNPACK (the default delegate), the optimized builtin kernels
# without it, and the reference kernels (what a build without the optimized ones runs).
KERNEL_PATHS = {"xnnpack": "AUTO", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "reference": "BUILTIN_REF"}


class TFLitePredictor(Predictor):
    def __init__(self, path: str, threads: int | None = None, xnnpack: bool = True, raw_io: bool = False,
                 kernels: str | None = None) -> None:
        super().__init__(path, raw_io)
        self.kernels = kernels = kernels or ("xnnpack" if xnnpack else "builtin")
        Interpreter, self.backend, kwargs = tflite_interpreter_args(path, threads, kernels)
        try:
            with quiet_litert_log():
                self._setup(Interpreter, kwargs)
        except (InputError, RuntimeFailure):
            raise
        except Exception as exc:  # noqa: BLE001 - damaged files raise ValueError, RuntimeError, ...
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise RuntimeFailure(f"{self.backend} cannot load {path}: {first[:300]}") from None

    def _setup(self, Interpreter: Any, kwargs: dict[str, Any]) -> None:
        self._it = Interpreter(**kwargs)
        sigs = self._it.get_signature_list()
        in_details = {d["index"]: d for d in self._it.get_input_details()}
        out_details = {d["index"]: d for d in self._it.get_output_details()}
        if sigs:
            key = "serving_default" if "serving_default" in sigs else next(iter(sigs))
            runner = self._it.get_signature_runner(key)
            sin, sout = runner.get_input_details(), runner.get_output_details()
            in_idx = {n: d["index"] for n, d in sin.items()}
            out_idx = {n: d["index"] for n, d in sout.items()}
            # Signatures of other subgraphs use their own tensor indices: only the primary
            # subgraph's tensors are reachable through set_tensor/get_tensor.
            self._fast = all(i in in_details for i in in_idx.values()) and all(i in out_details for i in out_idx.values())
            self._runner: Any = runner
            del runner
            names_in, names_out = list(sigs[key]["inputs"]), list(sigs[key]["outputs"])
        else:
            in_idx = {d["name"]: i for i, d in in_details.items()}
            out_idx = {d["name"]: i for i, d in out_details.items()}
            names_in, names_out = list(in_idx), list(out_idx)
            self._fast, self._runner = True, None
        details = {**in_details, **out_details}

        def info(name: str, idx: int, d: Mapping[str, Any] | None) -> TensorInfo:
            d = d or details[idx]
            sig = d.get("shape_signature")
            shape = tuple(int(x) for x in (sig if sig is not None and len(sig) else d["shape"]))
            scale, zp = _quant(d)
            return TensorInfo(name, shape, np.dtype(d["dtype"]).name, scale, zp)

        sig_in = self._runner.get_input_details() if self._runner else {}
        sig_out = self._runner.get_output_details() if self._runner else {}
        self.inputs = [info(n, in_idx[n], sig_in.get(n)) for n in names_in]
        self.outputs = [info(n, out_idx[n], sig_out.get(n)) for n in names_out]
        if self._fast:
            # a live signature runner counts as a reference into the interpreter and
            # would forbid resizing: the fast path needs only the indices read above
            self._runner = None
        self._in_idx, self._out_idx = in_idx, out_idx
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._allocated = False

    def predict(self, feeds: Mapping[str, np.ndarray] | np.ndarray | None = None, **kw: np.ndarray) -> dict[str, np.ndarray]:
        named = self._named(feeds, kw)
        arrays = {t.name: self._to_input(t, named[t.name]) for t in self.inputs}
        try:
            if not self._fast:
                if self._allocated:
                    out = self._runner(**arrays)
                else:
                    with quiet_litert_log():
                        out = self._runner(**arrays)
                    self._allocated = True
                return {t.name: self._from_output(t, np.array(out[t.name])) for t in self.outputs}
            it = self._it
            resized = False
            for name, a in arrays.items():
                if self._shapes.get(name) != a.shape:
                    it.resize_tensor_input(self._in_idx[name], a.shape, strict=False)
                    self._shapes[name] = a.shape
                    resized = True
            if resized or not self._allocated:
                with quiet_litert_log():
                    it.allocate_tensors()
                self._allocated = True
            for name, a in arrays.items():
                it.set_tensor(self._in_idx[name], a)
            it.invoke()
            return {t.name: self._from_output(t, it.get_tensor(self._out_idx[t.name])) for t in self.outputs}
        except (InputError, RuntimeFailure):
            raise
        except Exception as exc:  # noqa: BLE001 - ValueError/RuntimeError from the interpreter
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise RuntimeFailure(f"{self.backend} failed running {self.path}: {first[:300]}") from None


_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
    "tensor(int16)": "int16", "tensor(bool)": "bool",
}


def onnx_session(path: str, threads: int | None = None, providers: list[str] | None = None) -> Any:
    """An ONNX Runtime session for ``path`` (CPU by default, quiet), or a one-line error."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingDependencyError("onnxruntime is not installed: pip install onnxruntime") from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(path, sess_options=opts, providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
        raise RuntimeFailure(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0][:300]}") from None


class OnnxPredictor(Predictor):
    backend = "onnxruntime"

    def __init__(self, path: str, threads: int | None = None, raw_io: bool = False, providers: list[str] | None = None) -> None:
        super().__init__(path, raw_io)
        self._sess = onnx_session(path, threads, providers)

        def info(x: Any) -> TensorInfo:
            shape = tuple(d if isinstance(d, int) else -1 for d in x.shape)
            return TensorInfo(x.name, shape, _ORT_TYPES.get(x.type, "float32"))

        self.inputs = [info(x) for x in self._sess.get_inputs()]
        self.outputs = [info(x) for x in self._sess.get_outputs()]

    def predict(self, feeds: Mapping[str, np.ndarray] | np.ndarray | None = None, **kw: np.ndarray) -> dict[str, np.ndarray]:
        named = self._named(feeds, kw)
        arrays = {t.name: self._to_input(t, named[t.name]) for t in self.inputs}
        try:
            outs = self._sess.run(None, arrays)
        except Exception as exc:  # noqa: BLE001
            raise RuntimeFailure(f"onnxruntime failed running {self.path}: {str(exc).splitlines()[0][:300]}") from None
        return dict(zip(self.output_names, outs))


def load(path: str | Path, *, threads: int | None = None, xnnpack: bool = True, raw_io: bool = False) -> Any:
    """Load a ``.tflite`` or ``.onnx`` file (detected from content) as a ``Predictor``; a
    generative decoder (``generate.tflite``/``generate.onnx``: prefill and decode
    signatures, or past key-values) as an ``edgekit.generate.Decoder``, which has
    ``generate(ids, max_new_tokens=...)``."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{path} does not exist or is not a file")
    from edgekit import generate

    fmt = format_of(p, trust_name=True)
    if fmt is None or fmt.runtime not in _PREDICTORS:
        raise InputError(f"{path} is neither a TFLite (TFL3) nor an ONNX file")
    kernels = "xnnpack" if xnnpack else "builtin"
    if fmt.runtime == "litert" and {"prefill", "decode"} <= set(_signature_keys(p)):
        return generate.TFLiteDecoder(str(p), kernels=kernels, threads=threads)
    model = _PREDICTORS[fmt.runtime](str(p), threads=threads, xnnpack=xnnpack, raw_io=raw_io)
    if isinstance(model, OnnxPredictor) and generate.is_decoder_io(model.input_names):
        return generate.OnnxDecoder(str(p), session=model._sess)  # the session already loaded
    return model


def _signature_keys(p: Path) -> list[str]:
    from edgekit.generate import tflite_signature_keys

    try:
        return tflite_signature_keys(p)
    except Exception:  # noqa: BLE001 - a damaged file: the predictor says what is wrong with it
        return []


# The on-device predictor of each runtime a device runs without TensorFlow.
_PREDICTORS: dict[str, Any] = {
    "litert": TFLitePredictor,
    "onnxruntime": lambda path, xnnpack=True, **kw: OnnxPredictor(path, **kw),  # XNNPACK is LiteRT's
}
