"""Writing the reports of ``edgekit check``, all made from its JSON report:

- ``report.json``: the canonical record (the others, and ``edgekit report merge``, read it);
- ``junit.xml`` (edgekit/report/junit.py), ``summary.md`` (markdown.py), ``report.html`` (html.py).

``edgekit convert --json/--markdown/--html`` writes the same reports for one conversion,
built from the run's manifest with the same judging, so a conversion and a CI check of the
same model read alike. Its JSON is the check report (``report_version`` 1) of a run with one
model and no configuration: ``config`` and ``config_fingerprint`` are null and ``command``
is ``convert``.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from edgekit.check.config import CheckConfig, ModelCase
from edgekit.check.runner import REPORT_VERSION, finish, judge, median_ms
from edgekit.fsutil import atomic_write_bytes, atomic_write_json
from edgekit.report.html import html_report
from edgekit.report.junit import junit_xml
from edgekit.report.markdown import markdown

DEFAULT_NAMES = {"json": "report.json", "junit": "junit.xml", "markdown": "summary.md", "html": "report.html"}


def write_reports(report: dict[str, Any], out: Path, json_path: str | None = None, junit: str | None = None,
                  md: str | None = None, html_path: str | None = None) -> dict[str, Path]:
    """Write every report (atomically); default paths are under ``out``. Returns the paths."""
    paths = {
        "json": Path(json_path) if json_path else out / DEFAULT_NAMES["json"],
        "junit": Path(junit) if junit else out / DEFAULT_NAMES["junit"],
        "markdown": Path(md) if md else out / DEFAULT_NAMES["markdown"],
        "html": Path(html_path) if html_path else out / DEFAULT_NAMES["html"],
    }
    for p in paths.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    report = {**report, "reports": {k: str(v) for k, v in paths.items()}}
    atomic_write_json(paths["json"], report)
    atomic_write_bytes(paths["junit"], junit_xml(report))
    summary = markdown(report)
    atomic_write_bytes(paths["markdown"], summary.encode())
    atomic_write_bytes(paths["html"], html_report(report).encode())
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step:
        try:
            with open(step, "a", encoding="utf-8") as fh:
                fh.write(summary + "\n")
        except OSError:
            pass  # the summary is a courtesy; the files above are the record
    return paths


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
            "reference_latency_ms": median_ms(manifest.get("reference_latency")), "evaluation": manifest.get("evaluation")}
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
