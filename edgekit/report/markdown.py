"""``summary.md`` of an ``edgekit check`` run: a Markdown table per model (also appended to
``$GITHUB_STEP_SUMMARY``)."""
from __future__ import annotations

import os
from typing import Any

from edgekit.report.cases import agree, device, label, model_cases, model_state, num, size, task, totals_text, verdict

_HEAD = ("| artifact | device | status | size | latency (ms) | max abs diff | SNR (dB) | top-1 agreement | task metric | why |\n"
         "|---|---|---|---:|---:|---:|---:|---:|---|---|")


def markdown(report: dict[str, Any]) -> str:
    code = report["exit_code"]
    lines = [f"## edgekit check: {'PASSED' if code == 0 else 'FAILED'} ({verdict(report)}, exit code {code})", ""]
    lines.append(f"{totals_text(report['totals'])}; {report.get('elapsed_s', 0):.1f} s"
                 + (f"; shard {report['shard'][0]}/{report['shard'][1]}" if report.get("shard") else ""))
    if report.get("missing_models"):
        lines.append(f"\n**Not checked by any shard:** {', '.join(report['missing_models'])}")
    for m in report["models"]:
        lines += ["", f"### {m['name']} (`{os.path.basename(str(m.get('source', '')))}`, {model_state(m)})", ""]
        if m.get("error"):
            lines.append(f"**error:** {m['error']}")
            continue
        lines.append(_HEAD)
        lines += [_row(c) for c in model_cases(report, m["name"])]
    return "\n".join(lines) + "\n"


def _row(c: dict[str, Any]) -> str:
    why = "; ".join(c.get("messages", [])).replace("|", "\\|")
    return (f"| {c['artifact']} | {device(c)} | {label(c)} | {size(c.get('size'))} | "
            f"{num(c.get('latency_ms'), '{:.3f}')} | {num(c.get('max_abs'))} | "
            f"{num(c.get('min_snr_db'), '{:.1f}')} | {agree(c)} | "
            f"{task(c)} | {why[:300]} |")
