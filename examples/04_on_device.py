"""On the device: numpy and LiteRT only (no TensorFlow is imported here).

    python examples/04_on_device.py MODEL.tflite
"""
import sys

import numpy as np

from edgekit.runtime import load

model = load(sys.argv[1], threads=1)
print("inputs:", model.inputs)
x = np.random.default_rng(0).random((4, *model.inputs[0].shape[1:]), dtype=np.float32)
probs = model.predict(x)[model.output_names[0]]
print("predicted classes:", probs.argmax(axis=1))
assert "tensorflow" not in sys.modules
