"""Runners for the TensorFlow-side formats (SavedModel, .keras, .h5, weights + JSON)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edgekit.errors import RuntimeFailure
from edgekit.runtimes.base import Runner, _line


class _TFRunner(Runner):
    """A runner whose outputs are TensorFlow tensors before they become arrays."""

    def _outputs(self, feeds: dict[str, np.ndarray]) -> dict[str, object]:
        raise NotImplementedError

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self._outputs(feeds).items()}

    def output_devices(self, feeds: dict[str, np.ndarray]) -> set[str]:
        """The devices TensorFlow placed the outputs of one call on (the GPU check)."""
        import tensorflow as tf

        self.load()
        return {t.device for t in tf.nest.flatten(self._outputs(feeds)) if hasattr(t, "device")}


class SavedModelRunner(_TFRunner):
    """``tf.saved_model.load`` and the ``serving_default`` signature, called by keyword."""

    name = "tf-savedmodel"

    def _load(self) -> None:
        import tensorflow as tf

        from edgekit.savedmodel_scan import check_saved_model

        check_saved_model(self.path, bool(self.options.get("unsafe")))
        self._obj = tf.saved_model.load(self.path)
        sig = self._obj.signatures.get("serving_default")
        if sig is None:
            raise RuntimeFailure(f"{self.path} has no serving_default signature")
        self._sig = sig
        _, kw = sig.structured_input_signature
        self._names = (sorted(kw), sorted(sig.structured_outputs))
        self._dtypes = {n: kw[n].dtype.as_numpy_dtype for n in kw}

    def _io(self) -> tuple[list[str], list[str]]:
        self.load()
        return self._names

    def _outputs(self, feeds: dict[str, np.ndarray]) -> dict[str, object]:
        import tensorflow as tf

        return dict(self._sig(**{n: tf.constant(a.astype(self._dtypes[n], copy=False)) for n, a in feeds.items()}))


class KerasFileRunner(_TFRunner):
    """A ``.keras`` or ``.h5`` file reloaded by Keras (safe mode, no compile state)."""

    name = "keras"

    def _load(self) -> None:
        import keras

        from edgekit.models.keras_io import io_names

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                self._model = keras.saving.load_model(self.path, compile=False, custom_objects=self._custom(),
                                                      safe_mode=not self.options.get("unsafe"))
            except Exception as exc:  # noqa: BLE001
                from edgekit.converters import FORMATS, format_of

                hint = ""
                if format_of(self.path, trust_name=True) is FORMATS["h5"]:
                    hint = " (legacy HDF5 cannot represent every Keras 3 model, e.g. keras.ops calls in a functional graph; ship model.keras)"
                raise RuntimeFailure(f"Keras could not reload {self.path}: {_line(exc)}{hint}") from None
        self._names = io_names(self._model)

    def _custom(self) -> dict[str, object]:
        """The classes the original model used that are not Keras' own (keras-hub's, the
        user's): legacy HDF5 stores bare class names that only these resolve."""
        from edgekit.models.keras_io import resolve_classes

        return resolve_classes(list(self.options.get("custom_classes", [])))

    def _io(self) -> tuple[list[str], list[str]]:
        self.load()
        return self._expected()

    def _expected(self) -> tuple[list[str], list[str]]:
        """The names the model had before it was saved (``expect_names``) where the reloaded
        one only renamed them: Keras gives unnamed inputs and prefixed layers new automatic
        names on reload (``input_layer`` -> ``input_layer_1``). The architecture is the same,
        so the declared order binds them; the row says so."""
        want = self.options.get("expect_names")
        got_in, got_out = self._names
        if not want:
            return got_in, got_out
        w_in, w_out = list(want[0]), list(want[1])
        same = lambda a, b: a == b or (len(a) == len(b) and sorted(a) != sorted(b))  # noqa: E731
        if not (same(got_in, w_in) and same(got_out, w_out)) or (got_in, got_out) == (w_in, w_out):
            return got_in, got_out
        self.notes = [f"the reloaded model renamed its inputs/outputs ({', '.join(got_in + got_out)}); "
                      f"bound in declared order to {', '.join(w_in + w_out)}"]
        return w_in, w_out

    def _outputs(self, feeds: dict[str, np.ndarray]) -> dict[str, object]:
        from edgekit.models.keras_io import call_symbolic

        got_in, got_out = self._names
        w_in, w_out = self._expected()
        out = call_symbolic(self._model, {g: feeds[w] for g, w in zip(got_in, w_in)}, got_in, got_out)
        return {w: out[g] for g, w in zip(got_out, w_out)}


class KerasWeightsRunner(KerasFileRunner):
    """Architecture rebuilt from ``model.json`` beside the weights, then weights loaded."""

    name = "keras-weights"

    def _load(self) -> None:
        import keras

        from edgekit.models.keras_io import io_names

        arch = Path(self.path).with_name("model.json")
        if not arch.is_file():
            raise RuntimeFailure(f"{arch} (the architecture for {self.path}) is missing")
        from keras.src.saving.serialization_lib import SafeModeScope

        with SafeModeScope(not self.options.get("unsafe")):
            self._model = keras.models.model_from_json(arch.read_text(), custom_objects=self._custom())
        self._model.load_weights(self.path)
        self._names = io_names(self._model)
