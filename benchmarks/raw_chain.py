"""What a user chains by hand today, without edgekit: Keras saves and a TFLiteConverter
script (this file), then the tf2onnx CLI on the SavedModel (run by the benchmark). No
checks of any artifact."""
import contextlib
import io
import os
import sys

import keras
import tensorflow as tf

src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
model = keras.saving.load_model(src)
with contextlib.redirect_stdout(io.StringIO()):
    model.export(f"{out}/saved_model")
model.save(f"{out}/model.keras")
model.save(f"{out}/model.h5")
model.save_weights(f"{out}/model.weights.h5")
with open(f"{out}/model.json", "w") as fh:
    fh.write(model.to_json())
converter = tf.lite.TFLiteConverter.from_saved_model(f"{out}/saved_model")
with open(f"{out}/model.tflite", "wb") as fh:
    fh.write(converter.convert())
