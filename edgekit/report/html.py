"""``report.html`` of an ``edgekit check`` run: one self-contained file (inline CSS, SVG plots,
a few lines of script), viewable offline."""
from __future__ import annotations

import html
import io
import platform
import re
from typing import Any

from edgekit.report.cases import agree, device, label, model_cases, model_state, num, passed, size, task, totals_text, verdict
from edgekit.results import CaseStatus
from edgekit.validate.compare import HIST_EDGES_LOG10

_OK, _BAD = "#2e86c1", "#c0392b"  # plot colours of cases that passed and of the others

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

_TABLE_HEAD = ("<table class='matrix'><thead><tr><th>artifact</th><th>device</th><th>status</th><th>size</th>"
               "<th>latency (ms)</th><th>max abs diff</th><th>SNR (dB)</th><th>top-1 agreement</th>"
               "<th>task metric</th><th>why / notes</th></tr></thead><tbody>")


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)  # creator/date block
    return text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE: inline SVG


def _colour(c: dict[str, Any]) -> str:
    return _OK if passed(c) else _BAD


def _histograms(plt: Any, cases: list[dict[str, Any]]) -> tuple[str, str] | None:
    hists = [(c["artifact"], name, h) for c in cases for name, h in (c.get("hist") or {}).items() if h]
    if not hists:
        return None
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
    return "Error histogram per artifact", _svg(fig)


def _sizes(plt: Any, cases: list[dict[str, Any]]) -> tuple[str, str] | None:
    sized = [c for c in cases if c.get("size")]
    if not sized:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(sized) + 0.9))
    ax.barh([f"{c['artifact']}@{c['device']}" for c in sized], [c["size"] / 1e3 for c in sized],
            color=[_colour(c) for c in sized])
    ax.set_xlabel("size (KB)")
    ax.invert_yaxis()
    ax.tick_params(labelsize=7)
    return "Artifact sizes", _svg(fig)


def _accuracy(plt: Any, cases: list[dict[str, Any]]) -> tuple[str, str] | None:
    # the quantized artifacts, and the float artifact of each format that has some
    families = {str(c["artifact"]).split(":")[0] for c in cases if c.get("quantized")}
    quant = [c for c in cases if c.get("size") and (c.get("quantized") or c["artifact"] in families)]
    if not any(c.get("quantized") for c in quant):
        return None
    use_task = all(c.get("task_metric") for c in quant)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for c in quant:
        y = c["task_metric"]["value"] if use_task else (c.get("min_snr_db") if c.get("min_snr_db") is not None else 0.0)
        y = float(y) if not isinstance(y, str) else 200.0  # "inf": exact
        ax.scatter(c["size"] / 1e3, y, color=_colour(c))
        ax.annotate(c["artifact"], (c["size"] / 1e3, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("size (KB)")
    ax.set_ylabel(quant[0]["task_metric"]["metric"] if use_task else "SNR vs model (dB)")
    ax.grid(alpha=0.3)
    return ("Accuracy against size" if use_task else "Agreement (SNR) against size"), _svg(fig)


def _plots(report: dict[str, Any], model: str) -> list[tuple[str, str]]:
    """(title, inline svg) for one model: error histograms, sizes, accuracy against size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = [c for c in model_cases(report, model) if c["status"] != CaseStatus.SKIPPED]
    plots = (_histograms(plt, cases), _sizes(plt, cases), _accuracy(plt, cases))
    return [p for p in plots if p is not None]


def _head(report: dict[str, Any]) -> list[str]:
    code = report["exit_code"]
    e = html.escape
    return [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>edgekit check: {'passed' if code == 0 else 'failed'}</title>",
        f"<style>{_CSS}</style><script>{_JS}</script></head><body>",
        "<h1>edgekit check</h1>",
        f"<p class='verdict {'ok' if code == 0 else 'bad'}'>{'PASSED' if code == 0 else 'FAILED'}: "
        f"{e(verdict(report))} (exit code {code})</p>",
        f"<p>{totals_text(report['totals'])}. "
        f"Created {e(report.get('created', ''))} from {e(str(report.get('config', '')))}; "
        f"{report.get('elapsed_s', 0):.1f} s.</p>",
        "<p><label><input type='checkbox' id='only-failures'> show only what did not pass</label> "
        "(<span id='shown'></span> rows shown)</p>",
    ]


def _row(c: dict[str, Any]) -> str:
    e = html.escape
    why = "; ".join(c.get("messages", []) + c.get("notes", []))
    return (f"<tr class='{c['status']}' data-case='{e(c['id'])}'><td class='l'>{e(c['artifact'])}</td>"
            f"<td class='l'>{e(device(c))}</td><td class='st'>{label(c)}</td>"
            f"<td>{size(c.get('size'))}</td><td>{num(c.get('latency_ms'), '{:.3f}')}</td>"
            f"<td>{num(c.get('max_abs'))}</td><td>{num(c.get('min_snr_db'), '{:.1f}')}</td>"
            f"<td>{e(agree(c))}</td><td class='l'>{e(task(c))}</td>"
            f"<td class='l'>{e(why)}</td></tr>")


def _model_section(report: dict[str, Any], m: dict[str, Any]) -> list[str]:
    e = html.escape
    parts = [f"<h2 id='model-{e(m['name'])}'>{e(m['name'])}</h2><p>{e(str(m.get('source')))}: {model_state(m)}</p>",
             _TABLE_HEAD]
    parts += [_row(c) for c in model_cases(report, m["name"])]
    parts.append("</tbody></table>")
    for title, svg in _plots(report, m["name"]):
        parts.append(f"<figure><figcaption>{e(title)}</figcaption>{svg}</figure>")
    return parts


def html_report(report: dict[str, Any]) -> str:
    e = html.escape
    parts = _head(report)
    if report.get("missing_models"):
        parts.append(f"<p class='verdict bad'>Not checked by any shard: {e(', '.join(report['missing_models']))}</p>")
    for m in report["models"]:
        parts += _model_section(report, m)
    tools = ", ".join(f"{k} {v}" for k, v in report.get("tools", {}).items())
    parts.append(f"<p style='font-size:12px;color:#666'>Tools: {e(tools)}. Host: {e(platform.platform())}. "
                 "Latencies are medians of repeated runs on this host.</p></body></html>")
    return "\n".join(parts)
