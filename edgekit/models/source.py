"""Find out what a model argument is, from its content, without importing TensorFlow.

A model argument is a ``.keras`` archive, a legacy ``.h5`` file, a SavedModel directory,
``path/to/module.py:function`` returning a Keras model, or ``builtin:NAME`` for one of
edgekit's reference models. Loading a file never runs code from it by default: Keras'
safe mode is on, and ``Lambda`` layers (whose Python code would run on load) are found
in the stored config and refused unless the user passes ``--unsafe``.
"""
from __future__ import annotations

import json
import re
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from edgekit.errors import InputError, UnsafeModelError
from edgekit.safeparse import load_json

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
# Layers whose loading deserializes Python code.
CODE_LAYERS = {"Lambda"}
# Uncompressed size above which a .keras archive is refused (a zip bomb, not a model).
MAX_ARCHIVE_BYTES = 16 * 1024**3


@dataclass(frozen=True)
class ModelSource:
    """A model argument after detection: ``kind`` is keras, h5, saved_model, builder or builtin."""

    kind: str
    location: str
    function: str | None = None
    unsafe: bool = False
    weights: str | None = None  # snapshot of a built model's weights (builder/builtin kinds)
    custom_objects: str | None = None  # a module the user named to define custom classes
    shapes: dict[str, list[int]] | None = None  # --shape: how to trace a subclassed model's call

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("weights", "custom_objects", "shapes"):
            if d[k] is None:
                d.pop(k)
        return d

    @property
    def built_by_code(self) -> bool:
        return self.kind in ("builder", "builtin")

    @property
    def display(self) -> str:
        if self.kind in ("builder",):
            return f"{self.location}:{self.function}"
        if self.kind == "builtin":
            return f"builtin:{self.location}"
        return self.location


_BUILDER_RE = re.compile(r"^(?P<file>.+\.py):(?P<func>[A-Za-z_][A-Za-z0-9_]*)$")


def detect(arg: str, unsafe: bool = False, custom_objects: str | None = None) -> ModelSource:
    """Detect the kind of ``arg`` from its content; raise ``InputError`` with the fix."""
    if custom_objects is not None:
        co = Path(custom_objects)
        if not co.is_file() or co.suffix != ".py":
            raise InputError(f"--custom-objects {custom_objects}: expected an existing .py module")
        import dataclasses

        return dataclasses.replace(detect(arg, unsafe), custom_objects=str(co.resolve()))
    if arg.startswith("builtin:"):
        from edgekit.models.zoo import BUILDERS

        name = arg.split(":", 1)[1]
        if name not in BUILDERS:
            raise InputError(f"unknown built-in model {name!r}; choose one of: {', '.join(BUILDERS)}")
        return ModelSource("builtin", name, unsafe=unsafe)
    m = _BUILDER_RE.match(arg)
    if m:
        f = Path(m["file"])
        if not f.is_file():
            raise InputError(f"builder module {f} does not exist")
        return ModelSource("builder", str(f.resolve()), m["func"], unsafe=unsafe)
    return _detect_path(arg, unsafe)


def _detect_path(arg: str, unsafe: bool) -> ModelSource:
    """A model file or SavedModel directory, told by its first bytes."""
    p = Path(arg)
    if not p.exists():
        raise InputError(f"model {arg} does not exist (expected a .keras, .h5 file or a SavedModel directory)")
    if p.is_dir():
        if (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file():
            return ModelSource("saved_model", str(p.resolve()), unsafe=unsafe)
        raise InputError(
            f"{arg} is a directory but not a SavedModel (no saved_model.pb): pass a model file or a SavedModel directory"
        )
    if not p.is_file():
        raise InputError(f"{arg} is not a regular file")
    try:
        with open(p, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise InputError(f"cannot read {arg}: {exc.strerror}") from None
    if not head:
        raise InputError(f"{arg} is empty: expected a Keras model file")
    suffix = "".join(p.suffixes[-2:]) if p.name.endswith(".weights.h5") else p.suffix
    if head.startswith(HDF5_MAGIC):
        if suffix == ".weights.h5" or _h5_is_weights_only(p):
            raise InputError(
                f"{arg} holds weights only, no architecture: pass the full model (.keras or .h5) instead"
            )
        if suffix == ".keras":
            raise InputError(
                f"{arg} is an HDF5 (legacy .h5) file named .keras: rename it to .h5 so Keras and edgekit read it as HDF5"
            )
        _check_h5(p, unsafe)
        return ModelSource("h5", str(p.resolve()), unsafe=unsafe)
    if head.startswith(ZIP_MAGIC):
        if suffix in (".h5", ".hdf5"):
            raise InputError(f"{arg} is a Keras v3 (.keras zip) archive named {suffix}: rename it to .keras")
        _check_keras_archive(p, unsafe)
        return ModelSource("keras", str(p.resolve()), unsafe=unsafe)
    raise _not_a_model(arg, p, head)


def _not_a_model(arg: str, p: Path, head: bytes) -> InputError:
    """The error for a file that is no Keras model: what it is instead, where that is known."""
    from edgekit.converters import format_of

    fmt = format_of(p, trust_name=True)
    if fmt is not None and fmt.name == "tflite":
        return InputError(f"{arg} is a TFLite model, not a Keras model: convert takes the Keras model it came from")
    if fmt is not None and fmt.name == "onnx":
        return InputError(f"{arg} is an ONNX model, not a Keras model: convert takes the Keras model it came from")
    kind = "text" if all(32 <= b < 127 or b in (9, 10, 13) for b in head) else "binary"
    return InputError(
        f"{arg} is not a Keras model ({kind} file, neither a .keras zip archive nor HDF5): pass a .keras, .h5 or SavedModel"
    )


def _iter_layer_configs(cfg: Any) -> Iterator[dict[str, Any]]:
    if isinstance(cfg, dict):
        if isinstance(cfg.get("class_name"), str) and isinstance(cfg.get("config"), dict):
            yield cfg
        for v in cfg.values():
            yield from _iter_layer_configs(v)
    elif isinstance(cfg, list):
        for v in cfg:
            yield from _iter_layer_configs(v)


def find_code_layers(config: Any) -> list[str]:
    """Names of layers in a Keras config whose loading would run stored Python code."""
    found = []
    for layer in _iter_layer_configs(config):
        if layer["class_name"] in CODE_LAYERS:
            found.append(f"{layer['class_name']} layer '{layer['config'].get('name', '?')}'")
    return found


def find_custom_classes(config: Any) -> list[str]:
    """Classes in a Keras config that are not Keras' own (registered by user code)."""
    found = []
    for layer in _iter_layer_configs(config):
        # a damaged config can hold anything in these fields: only strings name a class
        module = layer.get("module") if isinstance(layer.get("module"), str) else ""
        reg = layer.get("registered_name") if isinstance(layer.get("registered_name"), str) else ""
        if (reg and reg != layer["class_name"]) or (module and not module.startswith("keras")):
            found.append(reg or f"{module}.{layer['class_name']}")
    return sorted(set(found))


def read_config(path: str) -> Any:
    """The model config stored in a .keras archive or a legacy .h5 file (None if unreadable)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                return load_json(zf.read("config.json"), "config.json")
        import h5py

        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            return load_json(raw.decode() if isinstance(raw, bytes) else raw, "model_config") if raw is not None else None
    except Exception:  # noqa: BLE001 - only used to improve an error message
        return None


def _refuse_code(arg: Path, config: Any, unsafe: bool) -> None:
    if unsafe:
        return
    bad = find_code_layers(config)
    if bad:
        raise UnsafeModelError(
            f"{arg} contains {', '.join(bad)}: loading it runs Python code stored in the file; "
            "pass --unsafe if you trust its author"
        )


def _check_keras_archive(p: Path, unsafe: bool) -> None:
    try:
        with zipfile.ZipFile(p) as zf:
            infos = zf.infolist()
            names = {i.filename for i in infos}
            for i in infos:
                if i.filename.startswith("/") or ".." in Path(i.filename).parts:
                    raise InputError(f"{p} has an archive member with an unsafe path ({i.filename!r}): refusing it")
                if (i.external_attr >> 16) & 0o170000 == 0o120000:  # a symlink member points elsewhere
                    raise InputError(f"{p} has an archive member that is a symbolic link ({i.filename!r}): refusing it")
            total = sum(i.file_size for i in infos)
            if total > MAX_ARCHIVE_BYTES:
                raise InputError(
                    f"{p} would unpack to {total / 1024**3:.1f} GiB (over {MAX_ARCHIVE_BYTES / 1024**3:.0f} GiB): refusing it"
                )
            if "config.json" not in names:
                raise InputError(f"{p} is a zip archive but not a Keras model (no config.json inside)")
            bad_member = zf.testzip()
            if bad_member is not None:
                raise InputError(f"{p} is corrupted ({bad_member} fails its checksum): re-save or re-download it")
            config = load_json(zf.read("config.json"), f"{p}: config.json")
    except zipfile.BadZipFile as exc:
        raise InputError(f"{p} is a truncated or corrupted .keras archive ({exc}): re-save or re-download it") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{p} has an unreadable config.json: the archive is corrupted") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{p} is a truncated or corrupted .keras archive ({exc})") from None
    _refuse_code(p, config, unsafe)


def _h5_is_weights_only(p: Path) -> bool:
    try:
        import h5py

        with h5py.File(p, "r") as f:
            return "model_config" not in f.attrs and ("layers" in f or "_layer_checkpoint_dependencies" in f or "vars" in f)
    except Exception:  # noqa: BLE001 - corrupt files are reported by _check_h5
        return False


def _check_h5(p: Path, unsafe: bool) -> None:
    try:
        import h5py

        with h5py.File(p, "r") as f:
            raw = f.attrs.get("model_config")
            if raw is None:
                raise InputError(f"{p} is an HDF5 file without a Keras model config: not a saved Keras model")
            if isinstance(raw, bytes):
                raw = raw.decode("utf-8")
            config = load_json(raw, f"{p}: model_config")
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py raises many types for damaged files
        raise InputError(f"{p} is a truncated or corrupted HDF5 file ({str(exc).splitlines()[0][:120]})") from None
    _refuse_code(p, config, unsafe)
