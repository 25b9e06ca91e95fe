"""Named tensor specifications shared by every stage (numpy only, no TensorFlow)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output. ``shape`` uses ``None`` for unknown dims (batch first).

    ``int_range`` is a half-open ``[low, high)`` range for integer inputs (token ids an
    Embedding accepts), used to generate valid random feeds.
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: str
    int_range: tuple[int, int] | None = None
    role: str | None = None  # inputs: "tokens", "mask", "segments", "image" or None: how to synthesize it
    # outputs: "lm" (next-token logits over a token input's vocabulary), "features" (embeddings,
    # encoder states) or None (scores): how a quantized artifact's output is judged
    value_range: tuple[float, float] | None = None  # floats the model expects (from preprocessing layers)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        for k in ("int_range", "role", "value_range"):
            if d[k] is None:
                d.pop(k)
            elif isinstance(d[k], tuple):
                d[k] = list(d[k])
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "TensorSpec":
        rng, vr = d.get("int_range"), d.get("value_range")
        return cls(d["name"], tuple(d["shape"]), d["dtype"], tuple(rng) if rng else None, d.get("role"),
                   tuple(vr) if vr else None)

    @property
    def variable_dims(self) -> bool:
        """Whether a dimension after the batch is unknown (a variable length or image size)."""
        return any(d is None for d in self.shape[1:])


@dataclass(frozen=True)
class ModelSpec:
    """What the pipeline knows about a loaded model before exporting it."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    source_format: str
    has_rnn: bool = False
    layer_count: int = 0
    param_count: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
    layers: tuple[str, ...] = field(default_factory=tuple)
    max_length: int | None = None  # the longest sequence the model declares (max_sequence_length)
    custom_classes: tuple[str, ...] = field(default_factory=tuple)  # "module:Name" not Keras' own
    # string inputs handled outside the artifacts (edgekit.text), one dict per string input
    preprocessing: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    # layers that own a weight matrix (a kernel or an embedding table): what a quantized weight
    # op is named after where a fused op also names its activation or batch norm
    kernel_layers: tuple[str, ...] = field(default_factory=tuple)

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self.outputs]

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": [s.to_json() for s in self.inputs],
            "outputs": [s.to_json() for s in self.outputs],
            "source_format": self.source_format,
            "has_rnn": self.has_rnn,
            "layer_count": self.layer_count,
            "param_count": self.param_count,
            "notes": list(self.notes),
            "layers": list(self.layers),
            "max_length": self.max_length,
            "custom_classes": list(self.custom_classes),
            "preprocessing": list(self.preprocessing),
            "kernel_layers": list(self.kernel_layers),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ModelSpec":
        return cls(
            inputs=tuple(TensorSpec.from_json(s) for s in d["inputs"]),
            outputs=tuple(TensorSpec.from_json(s) for s in d["outputs"]),
            source_format=d["source_format"],
            has_rnn=d.get("has_rnn", False),
            layer_count=d.get("layer_count", 0),
            param_count=d.get("param_count", 0),
            notes=tuple(d.get("notes", ())),
            layers=tuple(d.get("layers", ())),
            max_length=d.get("max_length"),
            custom_classes=tuple(d.get("custom_classes", ())),
            preprocessing=tuple(d.get("preprocessing", ())),
            kernel_layers=tuple(d.get("kernel_layers", ())),
        )
