"""Builders for the scaling benchmark: the guide's MLP family at 10^4 to 10^7 parameters."""


def _mlp(width: int):
    import keras

    return keras.Sequential([
        keras.Input((784,), name="pixels"),
        keras.layers.Dense(width, activation="relu", name="dense_1"),
        keras.layers.Dense(width, activation="relu", name="dense_2"),
        keras.layers.Dense(10, activation="softmax", name="probs"),
    ], name=f"mlp_{width}")


def mlp_1e4():
    return _mlp(12)  # 9.7k parameters


def mlp_1e5():
    return _mlp(110)  # 99k


def mlp_1e6():
    return _mlp(720)  # 1.09M


def mlp_1e7():
    return _mlp(2800)  # 10.1M
