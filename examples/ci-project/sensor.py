"""A 1-D convolutional model over a window of 3-axis sensor readings (untrained weights:
edgekit checks the conversion, not the task)."""
import keras


def build() -> keras.Model:
    window = keras.Input((128, 3), name="window")
    x = keras.layers.Conv1D(16, 5, activation="relu", name="conv1")(window)
    x = keras.layers.MaxPooling1D(2, name="pool1")(x)
    x = keras.layers.Conv1D(32, 3, activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
    activity = keras.layers.Dense(4, activation="softmax", name="activity")(x)
    intensity = keras.layers.Dense(1, name="intensity")(x)
    return keras.Model(window, {"activity": activity, "intensity": intensity}, name="sensor_cnn")
