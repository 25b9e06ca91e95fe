"""The example project's classifier: a small MLP trained on scikit-learn's digits (shipped
with scikit-learn, no download). edgekit calls build() in its TensorFlow worker with Keras'
random seed set, so the same weights come out on every run."""
import keras


def build() -> keras.Model:
    from edgekit.models.digits import load_digits

    x_train, y_train, _, _ = load_digits(size=28, seed=0)
    inputs = keras.Input((784,), name="pixels")
    h = keras.layers.Dense(64, activation="relu", name="hidden")(inputs)
    h = keras.layers.Dropout(0.1, name="dropout")(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(h)
    model = keras.Model(inputs, outputs, name="digits_mlp")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=8, batch_size=64, verbose=0)
    return model
