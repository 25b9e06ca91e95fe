"""Quantization recipes, calibration data and the ONNX Runtime quantizer.

TFLite recipes are applied by ``edgekit.converters.tflite`` (the TFLite converter), ONNX
recipes by ``edgekit.quantize.onnx_quant`` (ONNX Runtime's quantization tools).
"""
from edgekit.quantize.recipes import ONNX_MODES, TFLITE_MODES, Approach, Recipe, parse_modes

__all__ = ["Approach", "Recipe", "TFLITE_MODES", "ONNX_MODES", "parse_modes"]
