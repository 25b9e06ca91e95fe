"""Quantization recipes (float32 is the only recipe wired into convert so far)."""
