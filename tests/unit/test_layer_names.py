"""TFLite tensor names back to Keras layer names (quantization recipes and reports)."""
from edgekit.quantize.debug import keras_layer_map


def test_a_fused_op_is_named_by_its_first_layer_and_a_nested_model_by_its_block():
    names = ["cnn/Conv1/convolution;cnn/bn_Conv1/FusedBatchNormV3",
             "lm_1/backbone_1/transformer_layer_0_1/self_attention_1/query_1/einsum/Einsum",
             "lm_1/backbone_1/transformer_layer_1_1/feedforward_1/MatMul"]
    got = keras_layer_map(names, ["Conv1", "bn_Conv1", "backbone", "transformer_layer_0", "transformer_layer_1"])
    assert got == {names[0]: "Conv1", names[1]: "transformer_layer_0", names[2]: "transformer_layer_1"}


def test_a_fused_op_is_named_by_the_layer_that_owns_the_weights_where_known():
    name = "cnn/Conv1_relu/Relu6;cnn/bn_Conv1/batchnorm/add_1;cnn/Conv1/convolution"
    layers = ["Conv1", "bn_Conv1", "Conv1_relu"]
    assert keras_layer_map([name], layers) == {name: "Conv1_relu"}
    assert keras_layer_map([name], layers, prefer=["Conv1"]) == {name: "Conv1"}
