"""The reports of ``edgekit check``, all made from its JSON report:

- ``report.json``: the canonical record (the others, and ``edgekit report merge``, read it);
- ``junit.xml``: one test case per model x artifact x device, for CI systems' test views;
- ``summary.md``: a Markdown table per model (also appended to ``$GITHUB_STEP_SUMMARY``);
- ``report.html``: one self-contained file (inline CSS, SVG plots, a few lines of script),
  viewable offline.
"""
from __future__ import annotations

import html
import io
import os
import platform
import re
import socket
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from edgekit.check.runner import fmt_size as _size
from edgekit.fsutil import atomic_write_bytes, atomic_write_json
from edgekit.units import agreement_text, metric_text
from edgekit.validate.compare import HIST_EDGES_LOG10

DEFAULT_NAMES = {"json": "report.json", "junit": "junit.xml", "markdown": "summary.md", "html": "report.html"}
_ICON = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skipped": "skip"}
_VERDICT = {0: "passed", 1: "a conversion or runtime failed", 2: "a model's input was unusable",
            3: "a tolerance, budget, golden or regression check failed"}


def verdict(report: dict[str, Any]) -> str:
    """Why the run ends with its exit code, in words. Models no shard covered are named as the
    cause (a merge of one shard fails for that reason alone, not for a conversion)."""
    code = report["exit_code"]
    missing = report.get("missing_models") or []
    if not missing:
        return str(_VERDICT.get(code, code))
    t = report.get("totals", {})
    causes = [f"NOT CHECKED by any shard: {', '.join(missing)}"]
    if t.get("error"):
        causes.append(_VERDICT[1])
    if t.get("fail"):
        causes.append(_VERDICT[3])
    return "; ".join(causes)


def _num(v: Any, fmt: str = "{:.3g}") -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return fmt.format(v)


def _task(c: dict[str, Any]) -> str:
    t = c.get("task_metric")
    if not t:
        return "-"
    s = f"{t.get('metric', '')} {metric_text(str(t.get('metric', '')), t.get('value', 0))}"
    if t.get("drop") is not None:
        s += f" (drop {t['drop']:.2f})"
    return s


def _agree(c: dict[str, Any]) -> str:
    """Top-1 agreement as ``convert`` shows it: tie-aware, strict beside it where they differ."""
    if "top1" not in c:  # a report written before both were recorded
        return _num(c.get("agreement"), "{:.4f}")
    return agreement_text(c.get("top1"), c.get("top1_strict"), c.get("cosine"))


def _dev(c: dict[str, Any]) -> str:
    return c["device"] + (" (emulated)" if c.get("emulated") else "")


def _numbers(c: dict[str, Any]) -> str:
    parts = []
    if c.get("max_abs") is not None:
        parts.append(f"max|d|={c['max_abs']:.3g}")
    if c.get("min_snr_db") is not None:
        parts.append(f"SNR={c['min_snr_db']:.1f}dB")
    if c.get("agreement") is not None:
        parts.append(f"top-1 agreement={_agree(c)}")
    if c.get("size") is not None:
        parts.append(f"size={c['size']}B")
    if c.get("latency_ms") is not None:
        parts.append(f"latency={c['latency_ms']:.3f}ms")
    if c.get("task_metric"):
        parts.append("task=" + _task(c))
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------
# JUnit XML

def junit_xml(report: dict[str, Any]) -> bytes:
    """The JUnit XML most CI systems read (Jenkins, GitLab, GitHub Actions reporters):
    ``testsuites > testsuite (one per model) > testcase (one per artifact x device)``."""
    stamp = report.get("created", "")[:19]
    host = socket.gethostname()
    root = ET.Element("testsuites", name="edgekit check")
    tot = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
    by_model: dict[str, list[dict[str, Any]]] = {}
    for c in report["cases"]:
        by_model.setdefault(c["model"], []).append(c)
    minfo = {m["name"]: m for m in report["models"]}
    for sid, (model, cases) in enumerate(by_model.items()):
        t = sum(c.get("time_s") or 0.0 for c in cases)
        counts = {"failures": sum(c["status"] == "fail" for c in cases),
                  "errors": sum(c["status"] == "error" for c in cases),
                  "skipped": sum(c["status"] == "skipped" for c in cases)}
        suite = ET.SubElement(root, "testsuite", name=f"edgekit.{model}", tests=str(len(cases)),
                              failures=str(counts["failures"]), errors=str(counts["errors"]),
                              skipped=str(counts["skipped"]), time=f"{t:.3f}", timestamp=stamp,
                              hostname=host, id=str(sid), package="edgekit")
        props = ET.SubElement(suite, "properties")
        info = minfo.get(model, {})
        for k, v in (("source", info.get("source")), ("cached", info.get("cached")),
                     ("convert_elapsed_s", info.get("convert_elapsed_s")),
                     *((f"tool.{n}", ver) for n, ver in report.get("tools", {}).items())):
            ET.SubElement(props, "property", name=str(k), value=str(v))
        for c in cases:
            tc = ET.SubElement(suite, "testcase", classname=f"edgekit.{model}",
                               name=f"{c['artifact']}@{c['device']}", time=f"{c.get('time_s') or 0.0:.3f}")
            msg = "; ".join(c.get("messages", []))
            if c["status"] == "fail":
                el = ET.SubElement(tc, "failure", message=f"{c.get('kind')}: {msg}"[:2000], type=str(c.get("kind")))
                el.text = msg + "\n" + _numbers(c)
            elif c["status"] == "error":
                el = ET.SubElement(tc, "error", message=msg[:2000], type=str(c.get("kind")))
                el.text = msg
            elif c["status"] == "skipped":
                ET.SubElement(tc, "skipped", message=msg[:2000])
            out = ET.SubElement(tc, "system-out")
            out.text = _numbers(c) + ("\n" + "\n".join(c["notes"]) if c.get("notes") else "")
        for k in ("failures", "errors", "skipped"):
            tot[k] += counts[k]
        tot["tests"] += len(cases)
        tot["time"] += t
    for k, v in tot.items():
        root.set(k, f"{v:.3f}" if k == "time" else str(v))
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"


# ---------------------------------------------------------------------------------------------
# Markdown

def markdown(report: dict[str, Any]) -> str:
    t = report["totals"]
    code = report["exit_code"]
    lines = [f"## edgekit check: {'PASSED' if code == 0 else 'FAILED'} ({verdict(report)}, exit code {code})", ""]
    lines.append(f"{t['cases']} cases: {t['pass']} passed, {t['fail']} failed, {t['error']} errors, "
                 f"{t['skipped']} skipped; {report.get('elapsed_s', 0):.1f} s"
                 + (f"; shard {report['shard'][0]}/{report['shard'][1]}" if report.get("shard") else ""))
    if report.get("missing_models"):
        lines.append(f"\n**Not checked by any shard:** {', '.join(report['missing_models'])}")
    for m in report["models"]:
        cases = [c for c in report["cases"] if c["model"] == m["name"]]
        state = "cached, not reconverted" if m.get("cached") else f"converted in {m.get('convert_elapsed_s', 0):.1f} s"
        lines += ["", f"### {m['name']} (`{os.path.basename(str(m.get('source', '')))}`, {state})", ""]
        if m.get("error"):
            lines.append(f"**error:** {m['error']}")
            continue
        lines.append("| artifact | device | status | size | latency (ms) | max abs diff | SNR (dB) | top-1 agreement | task metric | why |")
        lines.append("|---|---|---|---:|---:|---:|---:|---:|---|---|")
        for c in cases:
            why = "; ".join(c.get("messages", [])).replace("|", "\\|")
            lines.append(f"| {c['artifact']} | {_dev(c)} | {_ICON[c['status']]} | {_size(c.get('size'))} | "
                         f"{_num(c.get('latency_ms'), '{:.3f}')} | {_num(c.get('max_abs'))} | "
                         f"{_num(c.get('min_snr_db'), '{:.1f}')} | {_agree(c)} | "
                         f"{_task(c)} | {why[:300]} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# HTML

def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)  # creator/date block
    return text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE: inline SVG


def _plots(report: dict[str, Any], model: str) -> list[tuple[str, str]]:
    """(title, inline svg) for one model: error histograms, sizes, accuracy against size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = [c for c in report["cases"] if c["model"] == model and c["status"] != "skipped"]
    out = []
    hists = [(c["artifact"], name, h) for c in cases for name, h in (c.get("hist") or {}).items() if h]
    if hists:
        fig, ax = plt.subplots(figsize=(7.5, 3.2))
        labels = ["0"] + [f"1e{e}" for e in HIST_EDGES_LOG10[:-1]]
        xs = range(len(labels))
        for art, name, h in hists[:12]:
            total = max(1, sum(h))
            ax.plot(xs, [v / total for v in h], marker="o", ms=3, label=f"{art} [{name}]" if len(hists) > 1 else art)
        ax.set_xticks(list(xs), labels, rotation=45, fontsize=7)
        ax.set_xlabel("|artifact - model| (bin start)")
        ax.set_ylabel("fraction of elements")
        ax.legend(fontsize=6, ncol=2)
        ax.grid(alpha=0.3)
        out.append(("Error histogram per artifact", _svg(fig)))
    sized = [c for c in cases if c.get("size")]
    if sized:
        fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(sized) + 0.9))
        ax.barh([f"{c['artifact']}@{c['device']}" for c in sized], [c["size"] / 1e3 for c in sized],
                color=["#c0392b" if c["status"] != "pass" else "#2e86c1" for c in sized])
        ax.set_xlabel("size (KB)")
        ax.invert_yaxis()
        ax.tick_params(labelsize=7)
        out.append(("Artifact sizes", _svg(fig)))
    quant = [c for c in cases if c.get("size") and (c.get("quantized") or c["artifact"] in ("tflite", "onnx"))]
    if any(c.get("quantized") for c in quant):
        use_task = all(c.get("task_metric") for c in quant)
        fig, ax = plt.subplots(figsize=(6, 3.2))
        for c in quant:
            y = c["task_metric"]["value"] if use_task else (c.get("min_snr_db") if c.get("min_snr_db") is not None else 0.0)
            y = float(y) if not isinstance(y, str) else 200.0  # "inf": exact
            ax.scatter(c["size"] / 1e3, y, color="#c0392b" if c["status"] != "pass" else "#2e86c1")
            ax.annotate(c["artifact"], (c["size"] / 1e3, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("size (KB)")
        ax.set_ylabel(quant[0]["task_metric"]["metric"] if use_task else "SNR vs model (dB)")
        ax.grid(alpha=0.3)
        out.append(("Accuracy against size" if use_task else "Agreement (SNR) against size", _svg(fig)))
    return out


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:3px 7px;font-size:13px;text-align:right}
th{background:#f3f3f3}
td.l{text-align:left;max-width:38em}
td{white-space:nowrap}td.l:last-child{white-space:normal}
tr.pass td.st{color:#1e7e34;font-weight:bold}
tr.fail td.st,tr.error td.st{color:#b21f1f;font-weight:bold}
tr.skipped td.st{color:#777}
.verdict{padding:.6em 1em;border-radius:4px;display:inline-block;font-weight:bold}
.ok{background:#d4edda}.bad{background:#f8d7da}
figure{display:inline-block;margin:0 1em 1em 0;vertical-align:top}
figcaption{font-size:13px;font-weight:bold}
"""

_JS = """
(function(){
  var errs=[];
  window.addEventListener('error',function(e){errs.push(String(e.message));
    document.documentElement.setAttribute('data-errors',errs.join(' | '));});
  function filter(){
    var only=document.getElementById('only-failures').checked, shown=0;
    document.querySelectorAll('table.matrix tbody tr').forEach(function(tr){
      var hide=only && tr.classList.contains('pass');
      tr.style.display=hide?'none':''; if(!hide) shown++;});
    document.getElementById('shown').textContent=shown;
  }
  document.addEventListener('DOMContentLoaded',function(){
    document.getElementById('only-failures').addEventListener('change',filter);
    filter();
    document.documentElement.setAttribute('data-edgekit-ready','1');
  });
})();
"""


def html_report(report: dict[str, Any]) -> str:
    code = report["exit_code"]
    t = report["totals"]
    e = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>edgekit check: {'passed' if code == 0 else 'failed'}</title>",
        f"<style>{_CSS}</style><script>{_JS}</script></head><body>",
        "<h1>edgekit check</h1>",
        f"<p class='verdict {'ok' if code == 0 else 'bad'}'>{'PASSED' if code == 0 else 'FAILED'}: "
        f"{e(verdict(report))} (exit code {code})</p>",
        f"<p>{t['cases']} cases: {t['pass']} passed, {t['fail']} failed, {t['error']} errors, {t['skipped']} skipped. "
        f"Created {e(report.get('created', ''))} from {e(str(report.get('config', '')))}; "
        f"{report.get('elapsed_s', 0):.1f} s.</p>",
        "<p><label><input type='checkbox' id='only-failures'> show only what did not pass</label> "
        "(<span id='shown'></span> rows shown)</p>",
    ]
    if report.get("missing_models"):
        parts.append(f"<p class='verdict bad'>Not checked by any shard: {e(', '.join(report['missing_models']))}</p>")
    for m in report["models"]:
        cases = [c for c in report["cases"] if c["model"] == m["name"]]
        state = "cached, not reconverted" if m.get("cached") else f"converted in {m.get('convert_elapsed_s', 0):.1f} s"
        parts.append(f"<h2 id='model-{e(m['name'])}'>{e(m['name'])}</h2><p>{e(str(m.get('source')))}: {state}</p>")
        parts.append("<table class='matrix'><thead><tr><th>artifact</th><th>device</th><th>status</th><th>size</th>"
                     "<th>latency (ms)</th><th>max abs diff</th><th>SNR (dB)</th><th>top-1 agreement</th>"
                     "<th>task metric</th><th>why / notes</th></tr></thead><tbody>")
        for c in cases:
            why = "; ".join(c.get("messages", []) + c.get("notes", []))
            parts.append(
                f"<tr class='{c['status']}' data-case='{e(c['id'])}'><td class='l'>{e(c['artifact'])}</td>"
                f"<td class='l'>{e(_dev(c))}</td><td class='st'>{_ICON[c['status']]}</td>"
                f"<td>{_size(c.get('size'))}</td><td>{_num(c.get('latency_ms'), '{:.3f}')}</td>"
                f"<td>{_num(c.get('max_abs'))}</td><td>{_num(c.get('min_snr_db'), '{:.1f}')}</td>"
                f"<td>{e(_agree(c))}</td><td class='l'>{e(_task(c))}</td>"
                f"<td class='l'>{e(why)}</td></tr>")
        parts.append("</tbody></table>")
        for title, svg in _plots(report, m["name"]):
            parts.append(f"<figure><figcaption>{e(title)}</figcaption>{svg}</figure>")
    tools = ", ".join(f"{k} {v}" for k, v in report.get("tools", {}).items())
    parts.append(f"<p style='font-size:12px;color:#666'>Tools: {e(tools)}. Host: {e(platform.platform())}. "
                 "Latencies are medians of repeated runs on this host.</p></body></html>")
    return "\n".join(parts)


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


def console_table(report: dict[str, Any]) -> str:
    """The terminal view: one line per case, then the verdict."""
    rows = [("case", "status", "size", "latency ms", "max|d|", "SNR dB", "why")]
    for c in report["cases"]:
        rows.append((c["id"], _ICON[c["status"]], _size(c.get("size")), _num(c.get("latency_ms"), "{:.3f}"),
                     _num(c.get("max_abs")), _num(c.get("min_snr_db"), "{:.1f}"),
                     "; ".join(c.get("messages", []))[:120]))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(6)) + "  " + r[6] for r in rows]
    t = report["totals"]
    cached = sum(1 for m in report["models"] if m.get("cached"))
    lines.append("")
    lines.append(f"{t['cases']} cases: {t['pass']} passed, {t['fail']} failed, {t['error']} errors, {t['skipped']} skipped"
                 + (f"; {cached} of {len(report['models'])} models unchanged (cached)" if cached else "")
                 + (f"; NOT CHECKED by any shard: {', '.join(report['missing_models'])}" if report.get("missing_models") else ""))
    lines.append(f"verdict: {verdict(report)} (exit code {report['exit_code']})")
    return "\n".join(lines)
