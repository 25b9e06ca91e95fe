"""``debug-quant`` gives each TFLite tensor its own Keras layer's name, printed whole."""
from __future__ import annotations

import json
from pathlib import Path

from edgekit.quantize.debug import keras_layer_map
from tests.conftest import run_cli

BUILDERS_PY = Path(__file__).resolve().parent.parent / "fixtures" / "builders.py"


def test_each_layer_takes_its_own_uniquified_scope():
    # the tensor names TF 2.21 writes for this repository's two_conv_unnamed builder
    tensors = ["functional_1/global_average_pooling2d_1/Mean",
               "functional_1/conv2d_1/Relu;functional_1/conv2d_1/convolution", "StatefulPartitionedCall:0",
               "functional_1/conv2d_1_2/Relu;functional_1/conv2d_1_2/convolution", "functional_1/dense_1/MatMul2"]
    got = keras_layer_map(tensors, ["conv2d", "conv2d_1", "global_average_pooling2d", "dense"], "functional")
    assert got == {tensors[0]: "global_average_pooling2d", tensors[1]: "conv2d", tensors[3]: "conv2d_1",
                   tensors[4]: "dense"}
    # named layers: the guide's CNN
    assert keras_layer_map(["cnn_1/conv_1_1/Relu;cnn_1/conv_1_1/convolution", "cnn_1/conv_2_1/Relu"],
                           ["conv_1", "conv_2"], "cnn") == {"cnn_1/conv_1_1/Relu;cnn_1/conv_1_1/convolution": "conv_1",
                                                            "cnn_1/conv_2_1/Relu": "conv_2"}


def test_debug_quant_names_both_convolutions_and_prints_whole_names(tmp_path):
    model = f"{BUILDERS_PY}:two_conv_unnamed"
    args = ["debug-quant", model, "--calibration", "random", "--calibration-samples", "40", "--no-selective", "-q"]
    proc = run_cli([*args, "--json"], timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout)["report"]
    by_op: dict[str, list[str]] = {}
    for r in rows:
        by_op.setdefault(r["op"], []).append(r["layer"])
    assert sorted(by_op["CONV_2D"]) == ["conv2d", "conv2d_1"]
    assert by_op["MEAN"] == ["global_average_pooling2d"]
    assert all(r["layer"] for r in rows), rows  # the softmax output too: its Dense layer
    text = run_cli(args, timeout=900).stdout
    assert "global_average_pooling2d " in text and "global_average_pooli " not in text
