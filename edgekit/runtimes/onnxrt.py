"""ONNX Runtime, through the on-device predictor (CPU execution provider by default)."""
from __future__ import annotations

import numpy as np

from edgekit.runtimes.base import Runner


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"

    def _load(self) -> None:
        from edgekit.runtime import OnnxPredictor

        self._pred = OnnxPredictor(self.path, threads=self.options.get("threads", 1),
                                   providers=self.options.get("providers"))

    def providers_in_use(self) -> list[str]:
        self.load()
        return list(self._pred._sess.get_providers())

    def _io(self) -> tuple[list[str], list[str]]:
        self.load()
        return self._pred.input_names, self._pred.output_names

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._pred.predict(feeds)
