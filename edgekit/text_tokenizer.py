"""A keras-hub tokenizer's assets beside a generative artifact, run without TensorFlow.

``convert --tokenizer DIR`` copies the assets keras-hub writes (``tokenizer.save_assets(DIR)``
or a preset's ``assets/tokenizer/``) into the output as ``tokenizer_<name>``:

- byte-level BPE (GPT-2, OPT, ...): ``vocabulary.json`` and ``merges.txt``, run by Hugging
  Face ``tokenizers`` with GPT-2's byte-level pre-tokenizer (what keras-hub's
  ``BytePairTokenizer`` computes; ``convert`` checks the two agree on sample texts);
- SentencePiece (Llama, Gemma, ...): ``vocabulary.spm``, run by ``sentencepiece``.

``edgekit generate --prompt TEXT`` finds them beside the artifact. Each backend is an
optional package; a missing one is a one-line error naming it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.errors import InputError, MissingDependencyError

PREFIX = "tokenizer_"
KINDS = {"bpe": ("vocabulary.json", "merges.txt"), "sentencepiece": ("vocabulary.spm",)}
ALIASES = {"vocab.json": "vocabulary.json"}  # Hugging Face's name for the same file
SAMPLES = ["The quick brown fox jumps over the lazy dog.", "hello world, hello devices!", " two  spaces\tand a tab",
           "numbers 1 2 3 and 1234, café, naïve"]


def find_assets(directory: str | Path) -> tuple[str, dict[str, Path]]:
    """(kind, asset name -> path) in ``directory`` or its ``assets/tokenizer``."""
    d = Path(directory)
    if not d.is_dir():
        raise InputError(f"--tokenizer {directory}: not a directory (expected keras-hub tokenizer assets)")
    for base in (d, d / "assets" / "tokenizer"):
        files = {ALIASES.get(p.name, p.name): p for p in base.iterdir()} if base.is_dir() else {}
        for kind, names in KINDS.items():
            if all(n in files for n in names):
                return kind, {n: files[n] for n in names}
    raise InputError(f"--tokenizer {directory}: no keras-hub tokenizer assets (vocabulary.json and merges.txt for "
                     f"byte-level BPE, or vocabulary.spm for SentencePiece)")


def output_files(directory: str | Path) -> dict[str, bytes]:
    """The files ``convert`` writes beside the artifacts: ``tokenizer_<asset>``."""
    _, assets = find_assets(directory)
    return {PREFIX + n: p.read_bytes() for n, p in assets.items()}


class Tokenizer:
    kind: str

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: list[int]) -> str:
        raise NotImplementedError


class ByteLevelBPE(Tokenizer):
    kind = "bpe"

    def __init__(self, vocabulary: Path, merges: Path) -> None:
        try:
            from tokenizers import Tokenizer as HFTokenizer, decoders, models, pre_tokenizers
        except ImportError:
            raise MissingDependencyError("--prompt with a byte-level BPE tokenizer needs tokenizers: "
                                         "pip install tokenizers") from None
        self._tok = HFTokenizer(models.BPE.from_file(str(vocabulary), str(merges)))
        self._tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        self._tok.decoder = decoders.ByteLevel()

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=False)


class SentencePiece(Tokenizer):
    kind = "sentencepiece"

    def __init__(self, proto: Path) -> None:
        try:
            import sentencepiece
        except ImportError:
            raise MissingDependencyError("--prompt with a SentencePiece tokenizer needs sentencepiece: "
                                         "pip install sentencepiece") from None
        self._sp = sentencepiece.SentencePieceProcessor(model_proto=proto.read_bytes())

    def encode(self, text: str) -> list[int]:
        return list(self._sp.encode(text))

    def decode(self, ids: list[int]) -> str:
        return str(self._sp.decode(list(ids)))


def load(directory: str | Path) -> Tokenizer:
    kind, assets = find_assets(directory)
    if kind == "bpe":
        return ByteLevelBPE(assets["vocabulary.json"], assets["merges.txt"])
    return SentencePiece(assets["vocabulary.spm"])


def load_beside(artifact: str | Path) -> Tokenizer:
    """The tokenizer ``convert --tokenizer`` wrote beside ``artifact``."""
    d = Path(artifact).resolve().parent
    found = {p.name[len(PREFIX):]: p for p in d.glob(PREFIX + "*")}
    for kind, names in KINDS.items():
        if all(n in found for n in names):
            return ByteLevelBPE(found["vocabulary.json"], found["merges.txt"]) if kind == "bpe" \
                else SentencePiece(found["vocabulary.spm"])
    raise InputError(f"no tokenizer beside {artifact}: convert with --tokenizer DIR (keras-hub tokenizer assets), "
                     f"or give the prompt as --prompt-ids")


def keras_hub_ids(directory: str, texts: list[str]) -> list[list[int]] | None:
    """The ids keras-hub's own tokenizer gives ``texts`` (TensorFlow worker); None where it
    cannot run here (keras-hub's SentencePiece tokenizer needs tensorflow-text)."""
    kind, assets = find_assets(directory)
    try:
        import keras_hub

        if kind == "bpe":
            tok: Any = keras_hub.tokenizers.BytePairTokenizer(vocabulary=str(assets["vocabulary.json"]),
                                                              merges=str(assets["merges.txt"]))
        else:
            tok = keras_hub.tokenizers.SentencePieceTokenizer(proto=str(assets["vocabulary.spm"]))
        return [[int(i) for i in tok(t)] for t in texts]
    except Exception:  # noqa: BLE001 - keras-hub or its text ops missing
        return None
