"""The reports of ``edgekit check`` for one ``edgekit convert`` run: the same JSON, Markdown
and HTML, built from the run's manifest with the same judging, so a conversion and a CI
check of the same model read alike.

The JSON is the check report (``report_version`` 1) of a run with one model and no
configuration: ``config`` and ``config_fingerprint`` are null and ``command`` is ``convert``.
"""
from __future__ import annotations

import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Any

from edgekit.check.config import CheckConfig, ModelCase
from edgekit.check.reports import html_report, markdown
from edgekit.check.runner import REPORT_VERSION, _ms, finish, judge
from edgekit.fsutil import atomic_write_bytes


def convert_report(result: Any, model: str) -> dict[str, Any]:
    """A check report (one model, its artifacts on every device) from a ``ConvertResult``."""
    from edgekit.report.manifest import manifest_dict

    manifest = manifest_dict(result)
    devices = [d["name"] for d in manifest.get("devices") or []] or ["x86-cpu"]
    name = Path(model.split(":")[-1]).stem or "model"
    from edgekit.options import ConvertOptions

    case = ModelCase(name=name, model=model, options=ConvertOptions(formats=(), devices=tuple(devices)))
    # judge() reads the configuration only for a baseline, which a conversion does not have
    cfg: CheckConfig = None  # type: ignore[assignment]
    cases = [judge(case, art, dev, manifest, None, cfg) for art in manifest["artifacts"] for dev in devices]
    info = {"name": name, "source": model, "out": str(result.out_dir), "cached": False,
            "convert_elapsed_s": result.elapsed_s, "golden": None, "error": None,
            "manifest": str(Path(result.out_dir) / "manifest.json"),
            "reference_latency_ms": _ms(manifest.get("reference_latency")), "evaluation": manifest.get("evaluation")}
    report = {
        "report_version": REPORT_VERSION, "command": "convert",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": None, "config_fingerprint": None, "all_models": [name], "shard": None,
        "models": [info], "cases": cases, "tools": manifest["tools"], "baseline": False,
        "elapsed_s": result.elapsed_s,
    }
    finish(report)
    report["exit_code"] = result.exit_code  # the command's own exit code, whatever else judged
    return report


def write_convert_reports(result: Any, model: str, json_path: str | None, md_path: str | None,
                          html_path: str | None) -> list[str]:
    """Write the reports asked for (``-`` as the JSON path: standard output). Returns what
    was written, for the closing line."""
    if not (json_path or md_path or html_path):
        return []
    report = convert_report(result, model)
    written = []
    if json_path == "-":
        sys.stdout.write(json.dumps(report, indent=1, default=str) + "\n")
    elif json_path:
        _write(json_path, json.dumps(report, indent=1, default=str).encode())
        written.append(json_path)
    if md_path:
        _write(md_path, markdown(report).encode())
        written.append(md_path)
    if html_path:
        _write(html_path, html_report(report).encode())
        written.append(html_path)
    return written


def _write(path: str, data: bytes) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(p, data)
