"""Legacy HDF5 ``.h5`` model (for tools and colleagues still on the Keras 2 format)."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from edgekit.converters.base import ExportContext, Exporter, first_line
from edgekit.errors import ConversionError


class H5Exporter(Exporter):
    name = "h5"

    def _write(self, ctx: ExportContext, path: Path, options: dict[str, Any]) -> dict[str, Any]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Keras warns that HDF5 is legacy; we know
                ctx.model.save(str(path))
        except Exception as exc:  # noqa: BLE001
            raise ConversionError(f".h5 save failed: {first_line(exc)}") from None
        return {}
