"""Keras v3 ``.keras`` archive."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.converters.base import ExportContext, Exporter, first_line
from edgekit.errors import ConversionError


class KerasV3Exporter(Exporter):
    name = "keras"

    def _write(self, ctx: ExportContext, path: Path, options: dict[str, Any]) -> dict[str, Any]:
        try:
            ctx.model.save(str(path))
        except Exception as exc:  # noqa: BLE001
            raise ConversionError(f".keras save failed: {first_line(exc)}") from None
        return {}
