"""The ``cuda`` device: ONNX Runtime's CUDA execution provider and TensorFlow on the GPU
(``pip install edgekit[gpu]``).

A GPU cell counts only when the GPU really ran it. ONNX Runtime silently falls back to the
CPU when CUDA is missing or broken, so the providers of the session are checked; TensorFlow's
outputs must have been placed on a GPU device. Otherwise the cell is *unavailable*, never a
pass. TF32 is disabled for validation, so float32 means float32.
"""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
from typing import Any, Mapping

import numpy as np

from edgekit.errors import DeviceUnavailable

CUDA_EP = "CUDAExecutionProvider"
# ONNX Runtime's CUDA provider: no TF32 in convolutions and matmuls
CUDA_EP_OPTIONS = {"device_id": "0", "use_tf32": "0"}




def cuda_status() -> tuple[bool, str]:
    """(available, why) without starting TensorFlow: a GPU visible to the driver and ONNX
    Runtime built with CUDA."""
    if shutil.which("nvidia-smi") is None:
        return False, "no NVIDIA driver (nvidia-smi not found); on a GPU machine: pip install 'edgekit[gpu]'"
    try:
        p = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
        gpus = [ln for ln in p.stdout.splitlines() if ln.startswith("GPU ")]
    except (OSError, subprocess.TimeoutExpired):
        gpus = []
    if not gpus:
        return False, "nvidia-smi lists no GPU"
    if importlib.util.find_spec("onnxruntime") is None:
        return False, "onnxruntime is not installed (pip install 'edgekit[gpu]')"
    import onnxruntime as ort

    if CUDA_EP not in ort.get_available_providers():
        return False, (f"this onnxruntime has no {CUDA_EP} (providers: {', '.join(ort.get_available_providers())}); "
                       "pip install 'edgekit[gpu]' (onnxruntime-gpu instead of onnxruntime)")
    return True, gpus[0].split(" (UUID")[0]


def require_provider(in_use: list[str], wanted: str = CUDA_EP) -> None:
    """Raise ``DeviceUnavailable`` unless ``wanted`` is the session's first provider."""
    if not in_use or in_use[0] != wanted:
        raise DeviceUnavailable(f"ONNX Runtime would run this on {in_use[0] if in_use else 'nothing'}, not {wanted}: "
                                "the GPU was not used (missing CUDA/cuDNN libraries, or an onnxruntime without CUDA)")


def run_onnx_cuda(path: str, feeds: Mapping[str, np.ndarray], repeats: int = 5) -> dict[str, Any]:
    """Run an ONNX file on the GPU, or raise ``DeviceUnavailable`` if it would not be."""
    from edgekit.runtimes.onnxrt import OnnxRuntimeRunner

    r = OnnxRuntimeRunner(path, providers=[(CUDA_EP, CUDA_EP_OPTIONS), "CPUExecutionProvider"])
    with r:
        require_provider(r.providers_in_use())
        outputs, stats = r.timed(dict(feeds), repeats)
        return {"outputs": outputs, "latency": stats, "providers": r.providers_in_use()}


def run_tf_gpu(runtime: str, path: str, feeds: Mapping[str, np.ndarray], repeats: int = 5) -> dict[str, Any]:
    """Run a SavedModel or .keras file with TensorFlow on the first GPU, TF32 off; raise
    ``DeviceUnavailable`` if TensorFlow sees no GPU or placed the outputs elsewhere."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        raise DeviceUnavailable("TensorFlow sees no GPU (a CPU-only TensorFlow, or CUDA libraries missing): "
                                "pip install 'edgekit[gpu]'")
    tf.config.experimental.enable_tensor_float_32_execution(False)
    from edgekit.runtimes import runner_class

    with tf.device("/GPU:0"), runner_class(runtime)(path) as r:  # loaded, and run, on the GPU
        where = r.output_devices(dict(feeds))
        if not where or not all("GPU" in d for d in where):
            raise DeviceUnavailable(f"TensorFlow placed the outputs on {sorted(where)}, not the GPU")
        outputs, stats = r.timed(dict(feeds), repeats)
    return {"outputs": outputs, "latency": stats, "device": "/GPU:0"}
