"""Weights only (``model.weights.h5``) plus the architecture as JSON (``model.json``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.converters.base import ExportContext, Exporter, first_line
from edgekit.errors import ConversionError
from edgekit.fsutil import atomic_write_bytes


class WeightsExporter(Exporter):
    name = "weights"

    def _write(self, ctx: ExportContext, path: Path, options: dict[str, Any]) -> dict[str, Any]:
        arch = path.with_name("model.json")
        try:
            ctx.model.save_weights(str(path))
            atomic_write_bytes(arch, ctx.model.to_json(indent=2).encode())
        except Exception as exc:  # noqa: BLE001
            raise ConversionError(f"weights export failed: {first_line(exc)}") from None
        return {"extra_files": [arch.name]}
