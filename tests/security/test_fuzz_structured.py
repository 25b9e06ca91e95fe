"""Structured fuzzing: valid files with one field changed to a hostile value (a wrong type, a
huge or negative number, NaN, a deep nest, a missing key), for the JSON config inside a
.keras, edgekit.toml, manifest.json and .npy headers. Every outcome is a result or one
``EdgekitError``, never a traceback. The default run is small; ``-m slow`` runs more."""
from __future__ import annotations

import copy
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from tests.security.conftest import keras_members, write_zip
from tests.security.test_robustness import cli_inprocess

SEED = 20261201
HOSTILE: list[Any] = [None, True, -1, 0, 2**63, -(2**31), 1e308, float("nan"), "", "x" * 10000, "../../etc",
                      [], {}, [[[[[[[[]]]]]]]], {"class_name": "Lambda", "config": {"name": "z"}}, "\u0000\ud7ff"]


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


def mutate_tree(obj: Any, rng: np.random.Generator) -> Any:
    """A copy of ``obj`` with one node replaced, deleted or nested 300 deep."""
    obj = copy.deepcopy(obj)
    paths = [p for p in _paths(obj) if p]
    if not paths:
        return HOSTILE[int(rng.integers(len(HOSTILE)))]
    path = paths[int(rng.integers(len(paths)))]
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    kind = int(rng.integers(4))
    if kind == 0 and isinstance(parent, dict):
        del parent[path[-1]]
    elif kind == 1:
        deep: Any = parent[path[-1]]
        for _ in range(300):
            deep = [deep]
        parent[path[-1]] = deep
    else:
        parent[path[-1]] = HOSTILE[int(rng.integers(len(HOSTILE)))]
    return obj


def _to_toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return "nan" if v != v else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_to_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_to_toml_value(x)}" for k, x in v.items()) + "}"
    return '""'


BASE_TOML = {"check": {"out": "out", "formats": ["onnx"], "devices": ["x86-cpu"]},
             "models": {"m": {"model": "builtin:mlp", "quantize": ["float16"], "batch_size": 2, "timeout": 60,
                              "tolerance": {"atol": 1e-4}, "budgets": {"max_size": {"default": "300 KB"}}}}}


def _toml_text(cfg: Any) -> str:
    if not isinstance(cfg, dict):
        return f"x = {_to_toml_value(cfg)}\n"
    lines = []
    for table, body in cfg.items():
        if isinstance(body, dict) and all(isinstance(v, dict) for v in body.values()) and body:
            for name, inner in body.items():
                lines.append(f"[{table}.{json.dumps(str(name))}]")
                lines += [f"{json.dumps(str(k))} = {_to_toml_value(v)}" for k, v in (inner or {}).items()]
        else:
            lines.append(f"{json.dumps(str(table))} = {_to_toml_value(body)}")
    return "\n".join(lines) + "\n"


def _expect_clean(fn, *args) -> str:
    try:
        fn(*args)
        return "ok"
    except EdgekitError:
        return "refused"


def fuzz_toml(tmp_path: Path, n: int) -> dict[str, int]:
    from edgekit.check.config import load_config

    rng = np.random.default_rng(SEED)
    outcomes: dict[str, int] = {}
    for i in range(n):
        p = tmp_path / f"c{i}" / "edgekit.toml"
        p.parent.mkdir(parents=True)
        p.write_text(_toml_text(mutate_tree(BASE_TOML, rng)))
        r = _expect_clean(load_config, p)
        outcomes[r] = outcomes.get(r, 0) + 1
    return outcomes


def fuzz_manifests(tmp_path: Path, n: int) -> dict[str, int]:
    from edgekit.verify import verify

    base = {"manifest_version": 1, "artifacts": [
        {"format": "onnx", "path": "model.onnx", "sha256": "0" * 64, "meta": {}},
        {"format": "weights", "path": "model.weights.h5", "sha256": "1" * 64,
         "meta": {"extra_files": {"model.json": "2" * 64}}}]}
    rng = np.random.default_rng(SEED + 1)
    outcomes: dict[str, int] = {}
    for i in range(n):
        d = tmp_path / f"m{i}"
        d.mkdir(parents=True)
        for name in ("model.onnx", "model.weights.h5", "model.json"):
            (d / name).write_bytes(name.encode())
        (d / "manifest.json").write_text(json.dumps(mutate_tree(base, rng)))
        r = _expect_clean(verify, str(d))
        outcomes[r] = outcomes.get(r, 0) + 1
    return outcomes


def fuzz_npy_headers(tmp_path: Path, n: int) -> dict[str, int]:
    from edgekit.feeds import load_arrays

    rng = np.random.default_rng(SEED + 2)
    base = {"descr": "<f4", "fortran_order": False, "shape": [2, 784]}
    outcomes: dict[str, int] = {}
    tmp_path.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        h = mutate_tree(base, rng)
        if isinstance(h, dict) and isinstance(h.get("shape"), list):
            h["shape"] = tuple(h["shape"])
        text = repr(h).encode()[:60000]
        header = text + b" " * (63 - (len(text) + 10) % 64) + b"\n"
        body = b"\x93NUMPY\x02\x00" + len(header).to_bytes(4, "little") + header + bytes(2 * 784 * 4)
        p = tmp_path / f"x{i}.npy"
        p.write_bytes(body)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("pixels.npy", body)
        (tmp_path / f"x{i}.npz").write_bytes(buf.getvalue())
        for q in (p, tmp_path / f"x{i}.npz"):
            r = _expect_clean(load_arrays, str(q))
            outcomes[r] = outcomes.get(r, 0) + 1
    return outcomes


def test_structured_fuzz_of_toml_manifests_and_npy_headers(tmp_path):
    toml = fuzz_toml(tmp_path / "toml", 60)
    manifests = fuzz_manifests(tmp_path / "manifest", 60)
    npy = fuzz_npy_headers(tmp_path / "npy", 40)
    print("structured fuzz:", toml, manifests, npy)
    assert sum(toml.values()) == 60 and toml.get("refused", 0) > 20
    assert sum(manifests.values()) == 60 and manifests.get("refused", 0) > 5
    assert sum(npy.values()) == 80 and npy.get("refused", 0) > 20


def _keras_config_fuzz(keras_file: str, tmp_path: Path, n: int, pool, monkeypatch) -> dict[str, int]:
    import edgekit.worker

    monkeypatch.setattr(edgekit.worker, "_DEFAULT_POOL", pool)
    members = keras_members(Path(keras_file))
    cfg = json.loads(members["config.json"])
    tmp_path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED + 3)
    codes: dict[str, int] = {}
    for i in range(n):
        p = write_zip(tmp_path / f"k{i}.keras", {**members, "config.json": json.dumps(mutate_tree(cfg, rng)).encode()})
        code, out, err = cli_inprocess(["convert", str(p), "--to", "onnx", "--out", str(tmp_path / f"o{i}"), "-q",
                                        "--timeout", "120"])
        assert code in (0, 1, 2, 3) and "Traceback" not in out + err, (i, code, err[-2000:])
        if code == 2:
            assert len([ln for ln in err.splitlines() if ln.startswith("edgekit: error:")]) == 1, err
        codes[str(code)] = codes.get(str(code), 0) + 1
    return codes


def test_structured_fuzz_of_keras_config(keras_files, tmp_path, pool, monkeypatch):
    codes = _keras_config_fuzz(keras_files["cnn.keras"], tmp_path, 12, pool, monkeypatch)
    print("keras config fuzz:", codes)
    assert sum(codes.values()) == 12 and codes.get("2", 0) >= 3


@pytest.mark.slow
def test_structured_fuzz_campaign_long(keras_files, tmp_path, pool, monkeypatch):
    n = int(os.environ.get("EDGEKIT_FUZZ_N", "300"))
    print(fuzz_toml(tmp_path / "t", n), fuzz_manifests(tmp_path / "m", n), fuzz_npy_headers(tmp_path / "n", n))
    print(_keras_config_fuzz(keras_files["cnn.keras"], tmp_path / "k", n // 10, pool, monkeypatch))
