"""LiteRT (ai-edge-litert, or the older tflite-runtime), through the on-device predictor:
the pipeline checks a file exactly the way ``edgekit run`` and ``edgekit.runtime`` run it
(binding by name, resizing, quantizing float inputs and dequantizing outputs)."""
from __future__ import annotations

import numpy as np

from edgekit.runtimes.base import Runner


class LiteRTRunner(Runner):
    name = "litert"

    def _load(self) -> None:
        from edgekit.runtime import TFLitePredictor

        self._pred = TFLitePredictor(self.path, threads=self.options.get("threads", 1),
                                     xnnpack=self.options.get("xnnpack", True), kernels=self.options.get("kernels"))

    def _io(self) -> tuple[list[str], list[str]]:
        self.load()
        return self._pred.input_names, self._pred.output_names

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._pred.predict(feeds)
