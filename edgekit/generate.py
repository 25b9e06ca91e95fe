"""Token-by-token generation with a generative artifact, without TensorFlow (numpy and the
runtime only: LiteRT for ``.tflite``, ONNX Runtime for ``.onnx``).

A generative artifact (``edgekit.converters.generative``) is a decoder with a KV cache:

- TFLite: signatures ``prefill`` and ``decode`` over per-layer caches ``kv_cache_k_i`` /
  ``kv_cache_v_i`` of a fixed length. A prompt is prefilled in chunks of the prefill length
  (the last chunk padded; a chunk that would run past the cache is moved back over tokens
  already seen, which recomputes the same keys and values), and its last token goes through
  ``decode``, which returns the logits of the next token.
- ONNX: ``input_ids`` and ``past_key_values.N.key/value`` -> ``logits`` and ``present.N.*``
  (Optimum's layout; ``attention_mask`` and ``position_ids`` are fed where a file declares them).

``Decoder.feed(ids)`` runs the model over the next tokens and returns the logits that
predict the one after them; ``generate`` samples from them.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgekit.errors import InputError, RuntimeFailure
from edgekit.runtime import Closable

METADATA_KEY = "edgekit.generate"


class Decoder(Closable):
    """A generative artifact loaded for generation: ``reset()``, then ``feed(ids)``."""

    path: str
    vocab: int
    cache_length: int | None  # the most positions a sequence may have (None: only the model's own limit)
    info: dict[str, Any]

    def __init__(self) -> None:
        self.position = 0

    def reset(self) -> None:
        raise NotImplementedError

    def feed(self, ids: Sequence[int]) -> np.ndarray:
        raise NotImplementedError

    def check_ids(self, ids: Sequence[int], what: str = "prompt") -> list[int]:
        out = [int(i) for i in ids]
        bad = [i for i in out if not 0 <= i < self.vocab]
        if bad:
            raise InputError(f"{what} id(s) {bad[:5]} outside the vocabulary of {self.vocab} (0..{self.vocab - 1})")
        return out

    def check_length(self, n_prompt: int, n_new: int) -> None:
        if n_prompt < 1:
            raise InputError("the prompt needs at least one token id")
        if n_new < 0:
            raise InputError("--max-new-tokens must be >= 0")
        if self.cache_length is not None and n_prompt + n_new > self.cache_length:
            raise InputError(f"a prompt of {n_prompt} tokens plus {n_new} new ones is longer than the cache of "
                             f"{self.cache_length} positions (convert with a larger --max-cache-length)")

    def generate(self, ids: Sequence[int], max_new_tokens: int = 16, *, temperature: float = 0.0,
                 top_k: int | None = None, seed: int | None = None, stop_ids: Sequence[int] = ()) -> dict[str, Any]:
        """Greedy (``temperature=0``) or sampled continuation of ``ids``."""
        return generate(self, ids, max_new_tokens, temperature=temperature, top_k=top_k, seed=seed, stop_ids=stop_ids)



class TFLiteDecoder(Decoder):
    def __init__(self, path: str, kernels: str = "xnnpack", threads: int | None = None) -> None:
        super().__init__()
        from edgekit.runtime import quiet_litert_log, tflite_interpreter_args

        self.path = path
        Interpreter, self.backend, kwargs = tflite_interpreter_args(path, threads, kernels)
        try:
            with quiet_litert_log():
                self._it = Interpreter(**kwargs)
                sigs = self._it.get_signature_list()
                if not {"prefill", "decode"} <= set(sigs):
                    raise InputError(f"{path} is not a generative artifact: it has no prefill and decode signatures "
                                     f"(signatures: {', '.join(sigs) or 'none'})")
                self._pre = self._it.get_signature_runner("prefill")
                self._dec = self._it.get_signature_runner("decode")
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise RuntimeFailure(f"{self.backend} cannot load {path}: {str(exc).splitlines()[0][:300]}") from None
        din, dout = self._dec.get_input_details(), self._dec.get_output_details()
        self._kv_names = sorted(n for n in din if n.startswith("kv_cache_"))
        if not self._kv_names or "logits" not in dout or "tokens" not in din:
            raise InputError(f"{path}: the decode signature has no tokens/kv_cache_*/logits: not a decoder edgekit knows")
        self._kv_shapes = {n: tuple(int(x) for x in din[n]["shape"]) for n in self._kv_names}
        self._kv_dtypes = {n: din[n]["dtype"] for n in self._kv_names}
        self.cache_length = int(next(iter(self._kv_shapes.values()))[1])
        self.prefill_length = int(self._pre.get_input_details()["tokens"]["shape"][1])
        self.vocab = int(dout["logits"]["shape"][-1])
        self.info = _tflite_info(path)
        self._history: list[int] = []
        self._ran: set[Any] = set()
        self.reset()

    def reset(self) -> None:
        self._kv = {n: np.zeros(s, self._kv_dtypes[n]) for n, s in self._kv_shapes.items()}
        self._history = []
        self.position = 0

    def _run(self, runner: Any, tokens: np.ndarray, pos: np.ndarray) -> dict[str, np.ndarray]:
        import contextlib

        from edgekit.runtime import quiet_litert_log

        first = runner not in self._ran  # a signature allocates (and makes its delegate) on its first call
        self._ran.add(runner)
        try:
            with quiet_litert_log() if first else contextlib.nullcontext():
                out = runner(tokens=tokens, input_pos=pos, **self._kv)
        except Exception as exc:  # noqa: BLE001
            raise RuntimeFailure(f"{self.backend} failed running {self.path}: {str(exc).splitlines()[0][:300]}") from None
        self._kv = {n: out[n] for n in self._kv_names}
        return out

    def _prefill(self, ids: list[int]) -> None:
        P, C = self.prefill_length, self.cache_length
        start = self.position
        for s in range(0, len(ids), P):
            pos0 = start + s
            place = min(pos0, C - P)  # a chunk never runs past the cache
            known = self._history + ids  # tokens at every position fed so far or now
            chunk = known[place:pos0 + min(P, len(ids) - s)]
            tokens = np.zeros((1, P), np.int32)
            tokens[0, :len(chunk)] = chunk
            self._run(self._pre, tokens, np.arange(place, place + P, dtype=np.int32))
        self._history += ids
        self.position += len(ids)

    def feed(self, ids: Sequence[int]) -> np.ndarray:
        ids = [int(i) for i in ids]
        self.check_length(self.position + len(ids), 0)
        if len(ids) > 1:
            self._prefill(ids[:-1])
        out = self._run(self._dec, np.asarray([[ids[-1]]], np.int32), np.asarray([self.position], np.int32))
        self._history.append(ids[-1])
        self.position += 1
        return np.asarray(out["logits"], dtype=np.float32).reshape(-1, self.vocab)[-1]


class OnnxDecoder(Decoder):
    def __init__(self, path: str, threads: int | None = None, providers: list[str] | None = None,
                 session: Any = None) -> None:
        super().__init__()
        from edgekit.runtime import onnx_session

        self.path, self.backend = path, "onnxruntime"
        self._sess = session if session is not None else onnx_session(path, threads, providers)
        ins = {i.name: i for i in self._sess.get_inputs()}
        self._past = sorted((n for n in ins if n.startswith("past_key_values.")), key=_layer_order)
        if not self._past or "input_ids" not in ins:
            raise InputError(f"{path} is not a generative artifact: no input_ids and past_key_values.* inputs "
                             f"(inputs: {', '.join(list(ins)[:8])})")
        self._ids_type = np.int64 if "int64" in ins["input_ids"].type else np.int32
        self._extra = {n: (np.int64 if "int64" in ins[n].type else np.int32)
                       for n in ("attention_mask", "position_ids") if n in ins}
        self._kv_dtypes = {n: (np.float16 if "float16" in ins[n].type else np.float32) for n in self._past}
        self._kv_dims = {n: (ins[n].shape[1], ins[n].shape[3]) for n in self._past}
        outs = [o.name for o in self._sess.get_outputs()]
        self._present = {n: n.replace("past_key_values.", "present.") for n in self._past}
        missing = [p for p in self._present.values() if p not in outs]
        if "logits" not in outs or missing:
            raise InputError(f"{path}: outputs {outs[:6]} have no logits and present.* for every past input")
        meta = dict(self._sess.get_modelmeta().custom_metadata_map or {})
        self.info = json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else {}
        self.vocab = int(self.info.get("vocab") or self._sess.get_outputs()[outs.index("logits")].shape[-1] or 0)
        if not self.vocab:
            raise InputError(f"{path}: the vocabulary size is not in the file (logits of an open last dimension)")
        self.cache_length = self.info.get("max_sequence_length")
        for n, (h, d) in self._kv_dims.items():
            if not isinstance(h, int) or not isinstance(d, int):
                raise InputError(f"{path}: {n} has open heads or head size ({ins[n].shape}): not a layout edgekit knows")
        self.reset()

    def reset(self) -> None:
        self._kv = {n: np.zeros((1, h, 0, d), self._kv_dtypes[n]) for n, (h, d) in self._kv_dims.items()}
        self.position = 0

    def feed(self, ids: Sequence[int]) -> np.ndarray:
        ids = [int(i) for i in ids]
        self.check_length(self.position + len(ids), 0)
        n = len(ids)
        feeds: dict[str, np.ndarray] = {"input_ids": np.asarray([ids], self._ids_type), **self._kv}
        if "attention_mask" in self._extra:
            feeds["attention_mask"] = np.ones((1, self.position + n), self._extra["attention_mask"])
        if "position_ids" in self._extra:
            feeds["position_ids"] = np.arange(self.position, self.position + n, dtype=self._extra["position_ids"])[None]
        try:
            outs = dict(zip([o.name for o in self._sess.get_outputs()], self._sess.run(None, feeds)))
        except Exception as exc:  # noqa: BLE001
            raise RuntimeFailure(f"onnxruntime failed running {self.path}: {str(exc).splitlines()[0][:300]}") from None
        self._kv = {p: outs[q] for p, q in self._present.items()}
        self.position += n
        return np.asarray(outs["logits"], dtype=np.float32)[0, -1]


def _layer_order(name: str) -> tuple[int, str]:
    parts = name.split(".")
    return (int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else 0, parts[-1])


def _tflite_info(path: str) -> dict[str, Any]:
    from edgekit.converters.tflite_signatures import read_metadata

    import mmap

    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:  # not the weights
            raw = read_metadata(buf, METADATA_KEY)
    except Exception:  # noqa: BLE001 - a file without our metadata, or without the schema module
        return {}
    return json.loads(raw) if raw else {}


def is_decoder_io(input_names: Sequence[str]) -> bool:
    """Whether an ONNX graph's inputs are a decoder's (past key-values)."""
    return any(n.startswith("past_key_values.") for n in input_names)


def is_generative(path: str | Path) -> bool:
    """Whether ``path`` is a generative artifact (by its signatures or inputs, not its name)."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
        if head[4:8] == b"TFL3":
            return {"prefill", "decode"} <= set(tflite_signature_keys(p))
        if head[:1] != b"\x08":
            return False
        try:
            import onnx

            names = [i.name for i in onnx.load(str(p), load_external_data=False).graph.input]
        except ImportError:  # the device install has ONNX Runtime only
            import onnxruntime as ort

            names = [i.name for i in ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).get_inputs()]
        return is_decoder_io(names)
    except Exception:  # noqa: BLE001 - unreadable: not a generative artifact
        return False


def tflite_signature_keys(p: Path) -> list[str]:
    """The file's signature keys, read from the flatbuffer (no interpreter) where the schema
    module is there, else from an interpreter."""
    try:
        import mmap

        from edgekit.runtimes.tflite_ops import schema

        with open(p, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:  # the header only
            m = schema().Model.GetRootAsModel(buf, 0)
            return [m.SignatureDefs(i).SignatureKey().decode() for i in range(m.SignatureDefsLength())]
    except Exception:  # noqa: BLE001 - no schema module (tflite-runtime): ask an interpreter
        from edgekit.runtime import _tflite_interpreter

        Interpreter, _ = _tflite_interpreter()
        return list(Interpreter(model_path=str(p)).get_signature_list())


def load_decoder(path: str | Path, *, kernels: str = "xnnpack", threads: int | None = None) -> Decoder:
    """A ``.tflite`` or ``.onnx`` generative artifact (detected from content) as a ``Decoder``."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{path} does not exist or is not a file")
    with open(p, "rb") as fh:
        head = fh.read(8)
    if head[4:8] == b"TFL3":
        return TFLiteDecoder(str(p), kernels=kernels, threads=threads)
    if head[:1] == b"\x08":
        return OnnxDecoder(str(p), threads=threads)
    raise InputError(f"{path} is neither a TFLite (TFL3) nor an ONNX file")


def _sample(logits: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator) -> int:
    if temperature <= 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    if top_k:
        cut = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= cut, z, -np.inf)
    p = np.exp(z - z.max())
    p /= p.sum()
    return int(rng.choice(len(p), p=p))


def generate(decoder: Decoder, ids: Sequence[int], max_new_tokens: int = 16, *, temperature: float = 0.0,
             top_k: int | None = None, seed: int | None = None, stop_ids: Sequence[int] = ()) -> dict[str, Any]:
    """``{"generated": [ids], "prefill_ms", "decode_ms_per_token", "stopped"}``: greedy by
    default; ``temperature`` > 0 samples (from the ``top_k`` most likely, with ``seed``)."""
    if temperature < 0:
        raise InputError("--temperature must be >= 0")
    if top_k is not None and top_k < 1:
        raise InputError("--top-k must be >= 1")
    prompt = decoder.check_ids(ids)
    decoder.check_length(len(prompt), max_new_tokens)
    stops = set(decoder.check_ids(stop_ids, "stop"))
    rng = np.random.default_rng(seed)
    decoder.reset()
    out: list[int] = []
    t0 = time.perf_counter()
    logits = decoder.feed(prompt)
    prefill_ms = (time.perf_counter() - t0) * 1e3
    decode_s = 0.0
    stopped = False
    while len(out) < max_new_tokens:
        tok = _sample(logits, temperature, top_k, rng)
        out.append(tok)
        if tok in stops:
            stopped = True
            break
        if len(out) == max_new_tokens:
            break
        t = time.perf_counter()
        logits = decoder.feed([tok])
        decode_s += time.perf_counter() - t
    steps = max(len(out) - 1, 0)
    return {"generated": out, "prefill_ms": round(prefill_ms, 3),
            "decode_ms_per_token": round(decode_s * 1e3 / steps, 3) if steps else None, "stopped": stopped}


def teacher_forced(decoder: Decoder, prompt: Sequence[int], continuation: Sequence[int]) -> dict[str, Any]:
    """The logits of every step along a given continuation (``[len(continuation), V]``: row
    t predicts ``continuation[t]``), as the prompt's prefill and then one decode step per
    token, with their latencies."""
    decoder.reset()
    t0 = time.perf_counter()
    rows = [decoder.feed(list(prompt))]
    prefill_ms = (time.perf_counter() - t0) * 1e3
    t1 = time.perf_counter()
    for tok in list(continuation)[:-1]:
        rows.append(decoder.feed([tok]))
    steps = max(len(continuation) - 1, 0)
    decode_ms = (time.perf_counter() - t1) * 1e3 / steps if steps else None
    return {"logits": np.stack(rows).astype(np.float32), "prefill_ms": prefill_ms, "decode_ms_per_token": decode_ms}


def check_run(path: str, cases: list[dict[str, Any]], kernels: str = "xnnpack") -> list[dict[str, Any]]:
    """The runtime worker's side of the generation check: each case's step logits along
    Keras' own greedy tokens (see ``edgekit.generation``)."""
    with load_decoder(path, kernels=kernels) as dec:
        return [teacher_forced(dec, c["prompt"], c["generated"]) for c in cases]


def describe(path: str) -> dict[str, Any]:
    """What a check needs to know of a generative artifact: vocabulary, cache and prefill lengths."""
    with load_decoder(path) as dec:
        return {"vocab": dec.vocab, "cache_length": dec.cache_length,
                "prefill_length": getattr(dec, "prefill_length", None), "info": dec.info}
