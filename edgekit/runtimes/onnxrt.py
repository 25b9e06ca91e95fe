"""ONNX Runtime, CPU execution provider."""
from __future__ import annotations

import numpy as np

from edgekit.runtimes.base import Runner, cast_to

_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_, "tensor(int16)": np.int16,
}


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"

    def _load(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(self.options.get("threads", 1))
        opts.log_severity_level = 3
        providers = self.options.get("providers") or ["CPUExecutionProvider"]
        self._sess = ort.InferenceSession(self.path, sess_options=opts, providers=providers)
        self._in_types = {i.name: np.dtype(_ORT_TYPES.get(i.type, np.float32)) for i in self._sess.get_inputs()}
        self._names = ([i.name for i in self._sess.get_inputs()], [o.name for o in self._sess.get_outputs()])

    def providers_in_use(self) -> list[str]:
        self.load()
        return list(self._sess.get_providers())

    def _io(self) -> tuple[list[str], list[str]]:
        self.load()
        return self._names

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = {n: cast_to(a, self._in_types[n], n) for n, a in feeds.items()}
        outs = self._sess.run(None, args)
        return dict(zip(self._names[1], outs))
