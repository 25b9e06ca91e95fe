"""Hostile models built inside the TensorFlow worker (the test process never imports TensorFlow)."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path


def saved_models_touching_files(out: str, target: str) -> dict[str, str]:
    """SavedModels whose serving_default writes ``target``, reads a file, or prints to a file;
    and a clean Keras export."""
    import keras
    import tensorflow as tf

    class Writer(tf.Module):
        def __init__(self) -> None:
            self.v = tf.Variable(1.0)

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def serve(self, x):
            tf.io.write_file(target, "written by the model")
            return {"y": x * self.v}

    class Reader(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def serve(self, x):
            secret = tf.io.read_file("/etc/hostname")
            return {"y": x + tf.cast(tf.strings.length(secret), tf.float32)}

    class Printer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def serve(self, x):
            tf.print("leak", output_stream="file://" + target + ".printed")
            return {"y": x * 2.0}

    class Globber(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def serve(self, x):
            n = tf.size(tf.io.matching_files("/etc/*"))
            return {"y": x + tf.cast(n, tf.float32)}

    d = Path(out)
    paths = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for name, cls in (("write", Writer), ("read", Reader), ("print", Printer), ("glob", Globber)):
            m = cls()
            tf.saved_model.save(m, str(d / f"{name}_sm"), signatures={"serving_default": m.serve})
            paths[name] = str(d / f"{name}_sm")
        x = keras.Input((3,), name="x")
        keras.Model(x, keras.layers.Dense(2, name="y")(x)).export(str(d / "clean_sm"))
    paths["clean"] = str(d / "clean_sm")
    return paths


def scan(path: str) -> list[str]:
    from edgekit.savedmodel_scan import forbidden_ops, read_meta_graphs

    return forbidden_ops(read_meta_graphs(path))


def small_keras(out: str) -> str:
    import keras

    x = keras.Input((4,), name="x")
    keras.Model(x, keras.layers.Dense(2, name="y")(x)).save(out)
    return out


def legacy_h5_lambda(out: str) -> str:
    """A legacy .h5 whose Lambda holds marshal'd Python bytecode (what tf.keras stored)."""
    import keras

    x = keras.Input((4,), name="x")
    keras.Model(x, keras.layers.Lambda(lambda t: t * 2.0, name="doubler")(x)).save(out)
    return out


def saved_model_with_broadcast_const(out: str, gib: int) -> str:
    """A SavedModel whose graph holds a Const of ``gib`` GiB stored as one float (a few bytes)."""
    import tensorflow as tf
    from google.protobuf import text_format  # noqa: F401 - protobuf is what is edited
    from tensorflow.core.protobuf import saved_model_pb2

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def serve(self, x):
            return {"y": x + tf.constant(1.0)}

    m = M()
    with contextlib.redirect_stdout(io.StringIO()):
        tf.saved_model.save(m, out, signatures={"serving_default": m.serve})
    pb = Path(out) / "saved_model.pb"
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString(pb.read_bytes())
    for f in sm.meta_graphs[0].graph_def.library.function:
        for n in f.node_def:
            if n.op == "Const" and n.attr["value"].tensor.dtype == 1:  # DT_FLOAT
                n.attr["value"].tensor.tensor_shape.dim.add().size = gib * 1024**3 // 4
    pb.write_bytes(sm.SerializeToString())
    return out
