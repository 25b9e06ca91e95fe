"""String preprocessing outside the model, in numpy (no TensorFlow): what a Keras
``TextVectorization`` layer does to text before the numeric model sees it.

TFLite and ONNX builtin graphs cannot take strings, so edgekit exports the numeric model
that follows the layer and writes the layer's settings and vocabulary beside it as
``preprocessing.json``. ``TextVectorizer`` reproduces the layer for the settings listed in
``SUPPORTED``; the conversion run checks it against the layer itself on sample texts.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgekit.errors import InputError

FILENAME = "preprocessing.json"
# The characters Keras' "strip_punctuation" removes (its regex class, unescaped).
PUNCTUATION = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'"
_PUNCT_RE = re.compile("[" + re.escape(PUNCTUATION) + "]")
SUPPORTED = {
    "standardize": (None, "lower", "strip_punctuation", "lower_and_strip_punctuation"),
    "split": (None, "whitespace", "character"),
    "output_mode": ("int",),
}


def unsupported(config: dict[str, Any]) -> list[str]:
    """Settings of a TextVectorization config that ``TextVectorizer`` cannot reproduce."""
    bad = [f"{k}={config.get(k)!r}" for k, ok in SUPPORTED.items() if config.get(k) not in ok]
    if config.get("ngrams"):
        bad.append(f"ngrams={config['ngrams']!r}")
    return bad


@dataclass(frozen=True)
class TextVectorizer:
    """Text -> token ids, as the Keras layer ``layer`` computes them for input ``input``.

    ``feeds`` is the numeric artifact's input that takes the ids."""

    input: str
    feeds: str
    layer: str
    vocabulary: tuple[str, ...]
    standardize: str | None = "lower_and_strip_punctuation"
    split: str | None = "whitespace"
    output_sequence_length: int | None = None
    dtype: str = "int64"

    def to_json(self) -> dict[str, Any]:
        return {"kind": "TextVectorization", "input": self.input, "feeds": self.feeds, "layer": self.layer,
                "standardize": self.standardize, "split": self.split,
                "output_sequence_length": self.output_sequence_length, "dtype": self.dtype,
                "mask_token": "", "oov_token": "[UNK]", "vocabulary": list(self.vocabulary)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "TextVectorizer":
        try:
            return cls(d["input"], d["feeds"], d["layer"], tuple(d["vocabulary"]), d.get("standardize"),
                       d.get("split"), d.get("output_sequence_length"), d.get("dtype", "int64"))
        except (KeyError, TypeError) as exc:
            raise InputError(f"{FILENAME}: missing or malformed field {exc}") from None

    def _standardize(self, text: str) -> str:
        if self.standardize in ("lower", "lower_and_strip_punctuation"):
            text = text.lower()
        if self.standardize in ("strip_punctuation", "lower_and_strip_punctuation"):
            text = _PUNCT_RE.sub("", text)
        return text

    def _split(self, text: str) -> list[str]:
        if self.split == "whitespace":
            return text.split()
        if self.split == "character":
            return list(text)
        return [text] if text else []

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        index = {tok: i for i, tok in enumerate(self.vocabulary)}
        oov = index.get("[UNK]", 1)
        rows = [[index.get(t, oov) for t in self._split(self._standardize(str(s)))] for s in texts]
        n = self.output_sequence_length or max((len(r) for r in rows), default=1) or 1
        out = np.zeros((len(rows), n), dtype=self.dtype)
        for i, r in enumerate(rows):
            out[i, :min(n, len(r))] = r[:n]
        return out


def sample_texts(vec: TextVectorizer, count: int, seed: int = 0) -> list[str]:
    """Texts that exercise the layer: vocabulary words in mixed case, punctuation, and an
    out-of-vocabulary word; some longer than the output length (truncation)."""
    rng = np.random.default_rng(seed)
    words = [w for w in vec.vocabulary if w not in ("", "[UNK]") and w.strip()] or ["text"]
    limit = (vec.output_sequence_length or 8) + 3
    out = []
    for i in range(count):
        picked = [str(w) for w in rng.choice(words, size=int(rng.integers(1, limit)))]
        if i % 2:
            picked[0] = picked[0].capitalize()
            picked.append("qzxv")  # out of vocabulary
        out.append(" ".join(picked) + ("!" if i % 3 == 0 else ""))
    return out


def load(artifact: str | Path) -> list[TextVectorizer]:
    """The preprocessing written beside ``artifact`` (empty when there is none)."""
    p = Path(artifact).parent / FILENAME
    if not p.is_file():
        return []
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{p} is unreadable: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), list):
        raise InputError(f"{p}: expected an object with a list 'inputs'")
    return [TextVectorizer.from_json(d) for d in data["inputs"]]
