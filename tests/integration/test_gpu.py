"""The cuda device on a real GPU: ONNX Runtime's CUDA provider and TensorFlow on /GPU:0,
each cell verified to have run on the GPU. Run with ``pytest -m gpu`` on a machine with an
NVIDIA GPU and ``pip install "edgekit[gpu]"``."""
from __future__ import annotations

import pytest

from edgekit.devices.cuda import cuda_status
from edgekit.pipeline import convert

pytestmark = pytest.mark.gpu

OK, WHY = cuda_status()
needs_gpu = pytest.mark.skipif(not OK, reason=f"no usable CUDA GPU: {WHY}")


@needs_gpu
@pytest.mark.parametrize("model", ["builtin:mlp", "builtin:cnn"])
def test_guide_models_on_the_gpu(model, tmp_path, pool):
    r = convert(model, tmp_path, formats="saved_model,keras,onnx,tflite", devices="x86-cpu,cuda", pool=pool)
    assert r.exit_code == 0, [(x.label, x.status, x.devices) for x in r.rows]
    cells = {x.label: x.devices["cuda"] for x in r.rows}
    assert cells["tflite"].status == "n/a"  # LiteRT has no CUDA path here
    for label in ("saved_model", "keras", "onnx"):
        c = cells[label]
        assert c.status == "pass", (label, c)
        assert c.latency["median_ms"] > 0
        assert c.vs_host["max_abs"] <= 1e-3  # TF32 off: float32 on both


@needs_gpu
def test_onnx_cells_name_the_provider(tmp_path, pool):
    import numpy as np

    from edgekit.devices.cuda import CUDA_EP, run_onnx_cuda

    convert("builtin:mlp", tmp_path, formats="onnx", pool=pool)
    res = run_onnx_cuda(str(tmp_path / "model.onnx"), {"pixels": np.zeros((2, 784), np.float32)}, 2)
    assert res["providers"][0] == CUDA_EP
