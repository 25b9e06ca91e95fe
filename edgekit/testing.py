"""Conversion checks in a project's own pytest suite.

Installed with edgekit as a pytest plugin (entry point ``pytest11``), so any project can write::

    from edgekit.testing import assert_converts

    def test_my_model_exports(tmp_path):
        assert_converts("models/classifier.keras", formats=["tflite", "onnx"], out_dir=tmp_path)

    def test_built_model(edgekit_convert):          # the fixture: tmp dir and shared workers
        model = build_model()                         # a keras.Model in this process
        edgekit_convert(model, formats="tflite", quantize="int8", calibration="digits")

A failure raises ``AssertionError`` whose message is the whole agreement matrix. The
workers that run TensorFlow and the runtimes are shared by every call in a test session.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

def _model_arg(model: Any, scratch: str) -> str:
    """A path, ``builtin:NAME``, ``module.py:function`` or a live Keras model (saved first)."""
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    if hasattr(model, "save") and hasattr(model, "inputs"):  # a keras.Model in the caller's process
        path = os.path.join(scratch, f"{getattr(model, 'name', 'model') or 'model'}.keras")
        model.save(path)
        return path
    raise TypeError(f"assert_converts: expected a model path, builtin:NAME, module.py:function or a keras.Model, "
                    f"got {type(model).__name__}")


def assert_converts(model: Any, formats: str | Iterable[str] | None = None, devices: str | Iterable[str] | None = None,
                    *, out_dir: str | os.PathLike[str] | None = None, pool: Any = None, **options: Any) -> Any:
    """Convert ``model`` to ``formats`` and check every artifact on ``devices``; return the
    ``ConvertResult`` when everything passed, raise ``AssertionError`` (the matrix as the
    message) when anything did not. ``options`` are those of ``edgekit.pipeline.convert``
    (``quantize``, ``calibration``, ``inputs``, ``atol``, ``rtol``, ``eval_data``, ...)."""
    from edgekit.pipeline import convert
    from edgekit.report.matrix import render

    from edgekit.devices import load_profiles

    devs = [d.strip() for d in devices.split(",")] if isinstance(devices, str) else list(devices or ["x86-cpu"])
    known = load_profiles()
    unknown = [d for d in devs if d not in known and d != "all-available"]
    if unknown:
        raise ValueError(f"assert_converts: unknown device(s) {unknown}; known: {', '.join(known)}")
    fmts = formats if (formats is None or isinstance(formats, str)) else ",".join(formats)
    for key in ("atol", "rtol"):  # a plain number applies to every output
        if isinstance(options.get(key), (int, float)):
            options[key] = {None: float(options[key])}
    with tempfile.TemporaryDirectory(prefix="edgekit-test-") as scratch:
        out = Path(out_dir) if out_dir is not None else Path(scratch) / "out"
        result = convert(_model_arg(model, scratch), out, formats=fmts, devices=devs, pool=pool,
                         **options)
    if result.exit_code != 0:
        raise AssertionError("edgekit: the model does not convert cleanly "
                             f"(exit code {result.exit_code}):\n{render(result)}")
    return result


try:
    import pytest
except ImportError:  # the plugin part needs pytest; assert_converts does not
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    @pytest.fixture(scope="session")
    def edgekit_pool() -> Any:
        """The TensorFlow and runtime workers, shared by the whole test session."""
        from edgekit.worker import default_pool

        return default_pool()

    @pytest.fixture()
    def edgekit_convert(tmp_path: Path, edgekit_pool: Any) -> Any:
        """``assert_converts`` writing under this test's ``tmp_path`` with the shared workers."""
        counter = iter(range(1_000_000))

        def run(model: Any, formats: Any = None, devices: Any = None, **options: Any) -> Any:
            out = options.pop("out_dir", None) or tmp_path / f"edgekit-{next(counter)}"
            return assert_converts(model, formats, devices, out_dir=out, pool=edgekit_pool, **options)
        return run
