"""Regenerate the self-test artifacts (needs TensorFlow): python -m edgekit.devices.selftest.make

Writes float and int8 TFLite and ONNX files of net.py plus inputs.npz; the known answers are
computed at use time by the host's runtimes, so only the files are stored."""
from pathlib import Path
import shutil
import tempfile

import numpy as np

HERE = Path(__file__).parent


def main() -> None:
    from edgekit.pipeline import convert

    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, (4, 16, 16, 3)).astype(np.float32)
    with tempfile.TemporaryDirectory() as d:
        np.savez(Path(d) / "cal.npz", image=rng.uniform(0, 1, (64, 16, 16, 3)).astype(np.float32))
        r = convert(f"{HERE / 'net.py'}:build", Path(d) / "out", formats="tflite,onnx", quantize="int8",
                    onnx_quantize="static", calibration=str(Path(d) / "cal.npz"), input_arrays={"image": x})
        assert r.exit_code == 0, [(row.label, row.status, row.error) for row in r.rows]
        for src, dst in (("model.tflite", "float.tflite"), ("model.onnx", "float.onnx"),
                         ("model_int8.tflite", "int8.tflite"), ("model_qdq.onnx", "int8.onnx")):
            shutil.copy(Path(d) / "out" / src, HERE / dst)
    np.savez(HERE / "inputs.npz", image=x)


if __name__ == "__main__":
    main()
