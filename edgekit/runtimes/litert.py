"""LiteRT (ai-edge-litert, or the older tflite-runtime) through the signature runner."""
from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.errors import RuntimeFailure
from edgekit.runtimes.base import Runner, cast_to


def interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]
    except ImportError:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found,no-redef]
    return Interpreter


class LiteRTRunner(Runner):
    name = "litert"

    def _load(self) -> None:
        Interpreter = interpreter_class()
        kwargs: dict[str, Any] = {"model_path": self.path, "num_threads": self.options.get("threads", 1)}
        if not self.options.get("xnnpack", True):
            from ai_edge_litert.interpreter import OpResolverType  # type: ignore[import-not-found]

            kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self._interp = Interpreter(**kwargs)
        sigs = self._interp.get_signature_list()
        if not sigs:
            raise RuntimeFailure(f"{self.path} has no signature: edgekit binds inputs by signature name")
        self._sig_key = "serving_default" if "serving_default" in sigs else next(iter(sigs))
        self._runner = self._interp.get_signature_runner(self._sig_key)
        self._in_dtypes = {n: np.dtype(d["dtype"]) for n, d in self._runner.get_input_details().items()}
        self._names = (list(sigs[self._sig_key]["inputs"]), list(sigs[self._sig_key]["outputs"]))

    def _io(self) -> tuple[list[str], list[str]]:
        self.load()
        return self._names

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = {n: cast_to(a, self._in_dtypes[n], n) for n, a in feeds.items()}
        out = self._runner(**args)
        # The runner returns views into interpreter memory; copy before the next call.
        return {k: np.array(v, copy=True) for k, v in out.items()}
