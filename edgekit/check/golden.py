"""Golden outputs: the inputs a model was checked on and its outputs, stored in the
repository so later runs compare against them as well as against the live model.

Format (version 1), one directory per model, ``<golden_dir>/<model name>/``:

- ``inputs.npz``, ``outputs.npz``: one array per input / output name, ``np.savez_compressed``
  (no pickled objects; readable with ``np.load(path, allow_pickle=False)``);
- ``golden.json``: ``{"golden_version": 1, "model", "source", "created", "tools": {package: version},
  "feeds": how the inputs were made, "arrays": {"inputs"|"outputs": {name: {dtype, shape, sha256}}}}``.

The sha256 of every array's bytes is checked on load: a golden file edited by hand or
corrupted is refused, not silently compared against.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit import errors
from edgekit.fsutil import atomic_write_bytes, move_into_place, remove_path

GOLDEN_VERSION = 1


@dataclass
class Golden:
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    meta: dict[str, Any]
    path: Path

    @property
    def tools(self) -> dict[str, str]:
        return dict(self.meta.get("tools", {}))


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _describe(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    return {k: {"dtype": str(v.dtype), "shape": list(v.shape), "sha256": _digest(v)} for k, v in arrays.items()}


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def write_golden(directory: Path, model: str, source: str, inputs: dict[str, Any], outputs: dict[str, Any],
                 feeds_info: dict[str, Any], tools: dict[str, str]) -> Path:
    """Write (or replace) ``directory/model`` in one step: a reader sees the old or the new set."""
    ins = {k: np.asarray(v) for k, v in inputs.items()}
    outs = {k: np.asarray(v) for k, v in outputs.items()}
    meta = {
        "golden_version": GOLDEN_VERSION,
        "model": model,
        "source": source,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "tools": tools,
        "feeds": feeds_info,
        "arrays": {"inputs": _describe(ins), "outputs": _describe(outs)},
    }
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / model
    tmp = Path(tempfile.mkdtemp(prefix=f".{model}-", dir=directory))
    try:
        atomic_write_bytes(tmp / "inputs.npz", _npz(ins))
        atomic_write_bytes(tmp / "outputs.npz", _npz(outs))
        atomic_write_bytes(tmp / "golden.json", (json.dumps(meta, indent=2) + "\n").encode())
        os.chmod(tmp, 0o755)
        move_into_place(tmp, final)
    finally:
        remove_path(tmp)
    return final


def read_golden(directory: Path, model: str) -> Golden | None:
    """The stored golden set of ``model``, None if there is none; ``InputError`` if it is damaged."""
    d = directory / model
    if not (d / "golden.json").is_file():
        return None
    try:
        meta = json.loads((d / "golden.json").read_text())
        if meta.get("golden_version") != GOLDEN_VERSION:
            raise errors.InputError(f"golden outputs {d}: version {meta.get('golden_version')!r}, this edgekit "
                                    f"reads version {GOLDEN_VERSION}; regenerate with edgekit check --update-golden")
        arrays = {}
        for part in ("inputs", "outputs"):
            with np.load(d / f"{part}.npz", allow_pickle=False) as z:
                arrays[part] = {k: z[k] for k in z.files}
            want = meta["arrays"][part]
            if set(want) != set(arrays[part]):
                raise ValueError(f"{part}.npz holds {sorted(arrays[part])}, golden.json lists {sorted(want)}")
            for k, a in arrays[part].items():
                if _digest(a) != want[k]["sha256"]:
                    raise ValueError(f"{part}.npz[{k}] does not match its sha256 in golden.json")
    except errors.InputError:
        raise
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise errors.InputError(f"golden outputs {d} are damaged ({exc}); regenerate them with "
                                "edgekit check --update-golden") from None
    return Golden(arrays["inputs"], arrays["outputs"], meta, d)


def tool_drift(stored: dict[str, str], current: dict[str, str]) -> list[str]:
    """``["keras 3.15.1 -> 3.16.0", ...]`` for the tools whose version changed."""
    return [f"{k} {stored[k]} -> {current[k]}" for k in sorted(stored) if k in current and stored[k] != current[k]]
