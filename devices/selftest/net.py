"""The self-test network: small, but it exercises the kernels an emulator can get wrong
(int8 and float convolutions, depthwise convolution, dense, softmax)."""
import keras


def build() -> keras.Model:
    x = keras.Input((16, 16, 3), name="image")
    h = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(x)
    h = keras.layers.DepthwiseConv2D(3, activation="relu", name="dw")(h)
    h = keras.layers.Conv2D(16, 1, activation="relu", name="pw")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    y = keras.layers.Dense(10, activation="softmax", name="probs")(h)
    return keras.Model(x, y, name="selftest")
