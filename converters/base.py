"""Shared pieces of the exporters (run inside the TensorFlow worker)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import ConversionError
from edgekit.specs import ModelSpec


@dataclass
class ExportContext:
    """The loaded model and what the exporters share within one run (e.g. a SavedModel
    written once and reused by the TFLite converter)."""

    model: Any
    spec: ModelSpec
    cache: dict[str, Any] = field(default_factory=dict)


class Exporter:
    """Writes one format. Subclasses implement ``_write(ctx, path, options) -> dict``.

    ``path`` is inside a staging directory; the pipeline renames it into place only
    after the export and its check finished, so a half-written file is never visible.
    """

    name = ""
    allowed_options: frozenset[str] = frozenset()

    def export(self, ctx: ExportContext, path: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
        options = dict(options or {})
        unknown = set(options) - self.allowed_options
        if unknown:
            raise ConversionError(f"{self.name} exporter has no option(s) {sorted(unknown)}")
        t0 = time.perf_counter()
        meta = self._write(ctx, Path(path), options) or {}
        meta["convert_s"] = time.perf_counter() - t0
        return meta

    def _write(self, ctx: ExportContext, path: Path, options: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


def first_line(exc: BaseException) -> str:
    """The most informative single line of a converter's (often multi-line) error."""
    import re

    text = str(exc)
    select = re.search(r"TF Select ops: ([^\n]+)", text)
    missing = sorted(set(re.findall(r"'(tf\.[A-Za-z0-9_]+)' op is neither a custom op nor a flex op", text)))
    if select or missing:
        ops = select.group(1).strip() if select else ", ".join(m[3:] for m in missing)
        return (f"TFLite builtins cannot express TensorFlow op(s) {ops}: they need Flex (TF Select) ops, which "
                "LiteRT without the Flex delegate cannot run")[:400]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "error:" in ln:
            return ln[ln.index("error:"):][:400]
    return (lines[0] if lines else type(exc).__name__)[:400]
