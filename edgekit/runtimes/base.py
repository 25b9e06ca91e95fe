"""The Runner contract: ``with Runner(path) as r: r.infer({name: array}) -> {name: array}``.

Binding is by name, never by position: TFLite signatures, ONNX graphs and Keras models
order their inputs differently. Subclasses override ``_load``, ``_infer`` and ``_io``.
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Mapping

import numpy as np

from edgekit.errors import InputError, RuntimeFailure


class Runner:
    name = ""

    def __init__(self, path: str, **options: Any) -> None:
        self.path = path
        self.options = options
        self._loaded = False

    def __enter__(self) -> "Runner":
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self) -> None:
        if not self._loaded:
            try:
                self._load()
            except (InputError, RuntimeFailure):
                raise
            except Exception as exc:  # noqa: BLE001 - engines raise many types
                raise RuntimeFailure(f"{self.name} could not load {self.path}: {_line(exc)}") from None
            self._loaded = True

    def close(self) -> None:
        self._loaded = False

    def input_names(self) -> list[str]:
        return list(self._io()[0])

    def output_names(self) -> list[str]:
        return list(self._io()[1])

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.load()
        want = self.input_names()
        missing = [n for n in want if n not in feeds]
        extra = [n for n in feeds if n not in want]
        if missing or extra:
            raise InputError(f"input names differ from the artifact's {want}: missing {missing}, unexpected {extra}")
        try:
            out = self._infer({n: np.ascontiguousarray(feeds[n]) for n in want})
        except (InputError, RuntimeFailure):
            raise
        except Exception as exc:  # noqa: BLE001
            raise RuntimeFailure(f"{self.name} failed running {self.path}: {_line(exc)}") from None
        return {k: np.asarray(v) for k, v in out.items()}

    def timed(self, feeds: Mapping[str, np.ndarray], repeats: int = 5) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Outputs of the first call, plus first-call and median latency in milliseconds."""
        return time_calls(lambda: self.infer(feeds), repeats)

    # -- to override --
    def _load(self) -> None:
        raise NotImplementedError

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _io(self) -> tuple[list[str], list[str]]:
        raise NotImplementedError


def measure(fn: Callable[[], Any], runs: int, warmup: int = 0) -> tuple[Any, float, list[float], float]:
    """``fn``'s first result and that call's latency, then ``warmup`` untimed calls and ``runs``
    timed ones: (result, first ms, each timed call's ms, seconds all timed calls took)."""
    t0 = time.perf_counter()
    out = fn()
    first = (time.perf_counter() - t0) * 1e3
    for _ in range(warmup):
        fn()
    times = []
    t_all = time.perf_counter()
    for _ in range(max(0, runs)):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return out, first, times, time.perf_counter() - t_all


def time_calls(fn: Callable[[], Any], repeats: int) -> tuple[Any, dict[str, float]]:
    """The first call's result, its latency and the median of ``repeats`` more (milliseconds)."""
    out, first, times, _ = measure(fn, repeats)
    return out, {"first_ms": first, "median_ms": statistics.median(times) if times else first, "runs": len(times)}


def _line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]
