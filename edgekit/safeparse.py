"""Parsing untrusted text and files without tracebacks, hangs or unbounded memory.

Python's ``json`` and ``tomllib`` recurse once per nesting level and end in a
``RecursionError`` on a file nested a few hundred levels deep; PIL decodes an image of any
declared size; ``open()`` on a FIFO blocks forever. Each helper here turns those into one
``InputError`` line (exit 2) before anything large is allocated.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from edgekit.errors import InputError

# Real configurations (Keras models nested in models, TOML tables) stay far below this.
MAX_DEPTH = 200
# 50 megapixels: about 10x a 4K frame, the largest image edgekit resizes for a model input.
MAX_IMAGE_PIXELS = 50_000_000
MAX_TEXT_BYTES = 64 * 1024**2


def depth(obj: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of lists/dicts, computed without recursion (stops counting past ``limit``)."""
    deepest = 0
    todo: list[tuple[Any, int]] = [(obj, 1)]
    while todo:
        o, d = todo.pop()
        if isinstance(o, dict):
            children: Any = o.values()
        elif isinstance(o, (list, tuple)):
            children = o
        else:
            continue
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        todo.extend((c, d + 1) for c in children)
    return deepest


def _too_deep(what: str, limit: int) -> InputError:
    return InputError(f"{what} is nested more than {limit} levels deep: not a file edgekit reads")


def load_json(data: str | bytes, what: str, limit: int = MAX_DEPTH) -> Any:
    """``json.loads`` with a nesting limit; every failure is an ``InputError`` naming ``what``."""
    try:
        obj = json.loads(data)
    except RecursionError:
        raise _too_deep(what, limit) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{what} is not valid JSON ({exc})") from None
    if depth(obj, limit) > limit:
        raise _too_deep(what, limit)
    return obj


def load_toml(text: str, what: str, error: type[InputError] = InputError, limit: int = MAX_DEPTH) -> dict[str, Any]:
    """``tomllib.loads`` with a nesting limit; failures raise ``error`` naming ``what``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise error(f"{what}: not valid TOML: nested more than {limit} levels deep") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what}: not valid TOML: {exc}") from None
    if depth(data, limit) > limit:
        raise error(f"{what}: not valid TOML: nested more than {limit} levels deep")
    return data


def require_regular_file(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` if it is a regular file (symlinks followed); a FIFO, socket or device would
    block or stream forever when read, a directory is a different kind of argument."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{what} {path} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device"
        raise InputError(f"{what} {path} is {kind}, not a regular file: edgekit reads regular files only")
    return p


def read_text(path: str | os.PathLike[str], what: str, limit: int = MAX_TEXT_BYTES) -> str:
    """A regular file's text, refused past ``limit`` bytes (configs, manifests, reports)."""
    p = require_regular_file(path, what)
    size = p.stat().st_size
    if size > limit:
        raise InputError(f"{what} {path} is {size / 1024**2:.0f} MiB: over the {limit / 1024**2:.0f} MiB edgekit reads")
    try:
        return p.read_text(errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from None


def open_image(path: str | os.PathLike[str], mode: str, max_pixels: int = MAX_IMAGE_PIXELS) -> Any:
    """A PIL image converted to ``mode``; its declared size is checked before any pixel is decoded."""
    from PIL import Image

    p = require_regular_file(path, "image")
    try:
        img = Image.open(p)  # reads the header only
        w, h = img.size
        if w * h > max_pixels:
            raise InputError(f"image {p} declares {w}x{h} pixels ({w * h / 1e6:.0f} MP), over the "
                             f"{max_pixels / 1e6:.0f} MP edgekit decodes: resize it first")
        return img.convert(mode)
    except Image.DecompressionBombError as exc:
        raise InputError(f"image {p}: {exc}") from None
    except (OSError, ValueError, SyntaxError) as exc:  # PIL raises SyntaxError for some broken headers
        raise InputError(f"cannot read image {p}: {exc}") from None


def innermost_reason(exc: BaseException, limit: int = 300) -> str:
    """The most specific line of a library's error: Keras wraps the real refusal ("Cannot
    deserialize `keras.utils.get_file` ... disallowed ... for security") in generic "could not
    be deserialized properly" layers, the last of which ends with "Exception encountered: WHY"."""
    while exc.__cause__ is not None or (exc.__context__ is not None and not exc.__suppress_context__):
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = str(exc).strip() or type(exc).__name__
    marker = "Exception encountered:"
    if marker in text:
        text = text[text.rfind(marker) + len(marker):].strip() or text
    return text.splitlines()[0][:limit]
