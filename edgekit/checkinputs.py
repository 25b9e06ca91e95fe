"""The inputs every artifact of a run is checked on: the user's arrays, else samples of the
labelled or calibration data, else seeded random inputs valid for the model (with a second
size for open dimensions), or sample texts for a model whose strings feed TextVectorization."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from edgekit.feeds import bind, describe_distribution, random_feeds
from edgekit.results import CHECK_SAMPLES
from edgekit.specs import ModelSpec
from edgekit.verdict import check_feeds


@dataclass
class CheckInputs:
    feeds: dict[str, np.ndarray]
    info: dict[str, Any]  # the manifest's "inputs" record
    feeds2: dict[str, np.ndarray] | None = None  # a second check size, for open dimensions
    text_reference: dict[str, np.ndarray] | None = None  # the whole model on the texts (string models)
    run_files: dict[str, bytes] = field(default_factory=dict)  # written beside the artifacts

    @property
    def batch(self) -> int:
        return int(next(iter(self.feeds.values())).shape[0])

    def open_shapes(self, spec: ModelSpec) -> dict[str, list[int]]:
        """The check size of each input with open dimensions (a fixed-size export uses it)."""
        return {s.name: list(self.feeds[s.name].shape[1:]) for s in spec.inputs if s.variable_dims}


def prepare(spec: ModelSpec, arrays: Mapping[str, np.ndarray] | None, label: str, opts: Any, data: Any,
            tf_call: Callable[..., Any], say: Callable[[str], None]) -> CheckInputs:
    """``data``: the run's calibration/eval data (``RunData``); ``tf_call`` calls the TF worker."""
    if arrays is None and (data.eval is not None or (data.calibration is not None and data.calibration.meaningful)):
        # Quantized models are only meaningful on the data they were calibrated for: random
        # inputs far outside the calibrated ranges would fail a correct int8 conversion.
        src = data.eval.inputs if data.eval is not None else data.calibration.arrays
        n = min(CHECK_SAMPLES, int(next(iter(src.values())).shape[0]))
        arrays = {k: v[:n] for k, v in src.items()}
        label = f"{n} samples of " + ("--eval-data" if data.eval is not None else "--calibration") + " data"
    ci = _text_inputs(spec, arrays, opts.batch_size, opts.seed, tf_call, say) if spec.preprocessing else None
    if ci is None and arrays is not None:
        ci = CheckInputs(bind(arrays, spec.inputs), {"source": label})
        ci.info["batch"] = ci.batch
    if ci is None:
        ci = _random_inputs(spec, opts)
    ci.info["shapes"] = {k: list(v.shape) for k, v in ci.feeds.items()}
    check_feeds(ci.feeds, opts.allow_nonfinite_inputs)
    return ci


def _random_inputs(spec: ModelSpec, o: Any) -> CheckInputs:
    from edgekit.memguard import check_feeds as check_feed_memory

    check_feed_memory(spec.inputs, o.batch_size, o.shapes)
    feeds = random_feeds(spec.inputs, batch=o.batch_size, seed=o.seed, shapes=o.shapes, max_length=spec.max_length)
    ci = CheckInputs(feeds, {"source": "random", "seed": o.seed, "batch": o.batch_size,
                             "distribution": {s.name: describe_distribution(s) for s in spec.inputs}})
    if any(s.variable_dims and s.name not in o.shapes for s in spec.inputs):
        # a second size proves that artifacts keeping open dimensions really do
        ci.feeds2 = random_feeds(spec.inputs, batch=o.batch_size, seed=o.seed, shapes=o.shapes,
                                 max_length=spec.max_length, second=True)
        ci.info["second_shapes"] = {k: list(v.shape) for k, v in ci.feeds2.items()}
    return ci


def _text_inputs(spec: ModelSpec, arrays: Mapping[str, np.ndarray] | None, batch_size: int, seed: int,
                 tf_call: Callable[..., Any], say: Callable[[str], None]) -> CheckInputs | None:
    """Check inputs for a model whose string inputs feed TextVectorization layers: sample
    texts (or the user's) tokenized by ``edgekit.text`` in numpy, and as the reference the
    whole Keras model on the same texts. None when the tokenizer cannot stand in."""
    from edgekit.text import FILENAME, TextVectorizer, sample_texts

    vecs = [TextVectorizer.from_json(p) for p in spec.preprocessing if "vocabulary" in p]
    if not vecs or len(vecs) != len(spec.preprocessing):
        return None
    given = {k: [str(x) for x in np.asarray(v).ravel()] for k, v in (arrays or {}).items()
             if np.asarray(v).dtype.kind in "USO"}
    batch = len(next(iter(given.values()))) if given else max(batch_size, 8)
    texts = {v.input: given.get(v.input) or sample_texts(v, batch, seed) for v in vecs}
    feeds = {v.feeds: v(texts[v.input]) for v in vecs}
    others = [s for s in spec.inputs if s.name not in feeds]
    rest = (bind({k: a for k, a in (arrays or {}).items() if k not in given}, tuple(others)) if arrays and others
            else random_feeds(tuple(others), batch=batch, seed=seed) if others else {})
    feeds.update(rest)
    ref, keras_ids = tf_call("string_reference", texts, rest, tag="reference:text")
    for v in vecs:
        bad = int(np.sum(np.any(keras_ids[v.feeds] != feeds[v.feeds], axis=1)))
        if keras_ids[v.feeds].shape != feeds[v.feeds].shape or bad:
            say(f"{v.layer}: the numpy tokenizer differs from the Keras layer on {bad} of {batch} texts: "
                "the artifacts are checked on token ids only")
            return None
    info = {"source": ("given texts" if given else f"{batch} sample texts from the vocabulary") + " (through "
            + ", ".join(v.layer for v in vecs) + ")", "batch": batch, "texts": texts,
            "preprocessing": {"file": FILENAME, "tokenizer_matches_keras": True}}
    return CheckInputs(feeds, info, text_reference=ref,
                       run_files={FILENAME: json.dumps({"inputs": [v.to_json() for v in vecs]}, indent=1).encode()})
