"""The numpy stand-in for TextVectorization (the integration test checks it against Keras)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.errors import InputError
from edgekit.text import FILENAME, TextVectorizer, load, sample_texts, unsupported

VOCAB = ("", "[UNK]", "the", "fox", "dog's", "quick")


def vec(**kw) -> TextVectorizer:
    return TextVectorizer("text", "vectorize", "vectorize", VOCAB, **{"output_sequence_length": 4, **kw})


def test_lowercases_strips_punctuation_pads_and_maps_unknown_words():
    ids = vec()(["The QUICK, fox!", "zebra"])
    assert ids.dtype == np.int64 and ids.shape == (2, 4)
    assert ids.tolist() == [[2, 5, 3, 0], [1, 0, 0, 0]]


def test_truncates_to_the_output_length_and_pads_to_the_longest_without_one():
    assert vec()(["the the the the the fox"]).tolist() == [[2, 2, 2, 2]]
    ragged = vec(output_sequence_length=None)(["the", "the quick fox"])
    assert ragged.tolist() == [[2, 0, 0], [2, 5, 3]]


def test_standardize_none_keeps_case_and_punctuation():
    v = vec(standardize=None)
    assert v(["The fox"]).tolist() == [[1, 3, 0, 0]]  # "The" is not in the vocabulary
    assert vec(standardize="lower")(["dog's"]).tolist() == [[4, 0, 0, 0]]
    assert vec()(["dog's"]).tolist() == [[1, 0, 0, 0]]  # "dogs" after stripping the apostrophe


def test_character_split():
    v = TextVectorizer("t", "v", "v", ("", "[UNK]", "a", "b"), split="character", output_sequence_length=3)
    assert v(["abz"]).tolist() == [[2, 3, 1]]


def test_unsupported_settings_are_named():
    assert unsupported({"standardize": "lower", "split": "whitespace", "output_mode": "int"}) == []
    bad = unsupported({"standardize": "lower", "split": "whitespace", "output_mode": "tf_idf", "ngrams": 2})
    assert "output_mode='tf_idf'" in bad and "ngrams=2" in bad


def test_round_trip_and_load_beside_an_artifact(tmp_path):
    v = vec()
    (tmp_path / FILENAME).write_text(json.dumps({"inputs": [v.to_json()]}))
    (loaded,) = load(tmp_path / "model.tflite")
    assert loaded == v
    assert load(tmp_path / "sub" / "model.tflite") == []
    (tmp_path / FILENAME).write_text("[1, 2]")
    with pytest.raises(InputError, match="expected an object"):
        load(tmp_path / "model.tflite")


def test_sample_texts_cover_unknown_words_and_truncation():
    texts = sample_texts(vec(), 12, seed=1)
    assert len(texts) == 12 and any("qzxv" in t for t in texts)
    ids = vec()(texts)
    assert (ids == 1).any()  # the out-of-vocabulary id occurs
    assert any(len(t.split()) > 4 for t in texts)  # some are cut to the output length
