"""The cases of an ``edgekit check`` report (its JSON, as dicts) in words and numbers: what
the terminal table, JUnit XML, Markdown and HTML reports all show the same way."""
from __future__ import annotations

from typing import Any

from edgekit.results import CaseStatus
from edgekit.units import agreement_text, metric_text, size_text

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
    if t.get(CaseStatus.ERROR):
        causes.append(_VERDICT[1])
    if t.get(CaseStatus.FAIL):
        causes.append(_VERDICT[3])
    return "; ".join(causes)


def totals_text(t: dict[str, int]) -> str:
    """``"6 cases: 4 passed, 1 failed, 0 errors, 1 skipped"``."""
    return (f"{t['cases']} cases: {t[CaseStatus.PASS]} passed, {t[CaseStatus.FAIL]} failed, "
            f"{t[CaseStatus.ERROR]} errors, {t[CaseStatus.SKIPPED]} skipped")


def model_state(m: dict[str, Any]) -> str:
    """Whether a model was reconverted, and how long that took."""
    return "cached, not reconverted" if m.get("cached") else f"converted in {m.get('convert_elapsed_s', 0):.1f} s"


def model_cases(report: dict[str, Any], model: str) -> list[dict[str, Any]]:
    return [c for c in report["cases"] if c["model"] == model]


def label(c: dict[str, Any]) -> str:
    """The case's status as the reports print it (PASS, FAIL, ERROR, skip)."""
    return CaseStatus(c["status"]).label


def passed(c: dict[str, Any]) -> bool:
    return c["status"] == CaseStatus.PASS


def num(v: Any, fmt: str = "{:.3g}") -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return fmt.format(v)


def size(n: int | None) -> str:
    """Decimal units, as budgets are written: see ``edgekit.units.size_text``."""
    return size_text(n)


def task(c: dict[str, Any]) -> str:
    t = c.get("task_metric")
    if not t:
        return "-"
    s = f"{t.get('metric', '')} {metric_text(str(t.get('metric', '')), t.get('value', 0))}"
    if t.get("drop") is not None:
        s += f" (drop {t['drop']:.2f})"
    return s


def agree(c: dict[str, Any]) -> str:
    """Top-1 agreement as ``convert`` shows it: tie-aware, strict beside it where they differ."""
    if "top1" not in c:  # a report written before both were recorded
        return num(c.get("agreement"), "{:.4f}")
    return agreement_text(c.get("top1"), c.get("top1_strict"), c.get("cosine"), c.get("kl"))


def device(c: dict[str, Any]) -> str:
    return c["device"] + (" (emulated)" if c.get("emulated") else "")


def numbers(c: dict[str, Any]) -> str:
    parts = []
    if c.get("max_abs") is not None:
        parts.append(f"max|d|={c['max_abs']:.3g}")
    if c.get("min_snr_db") is not None:
        parts.append(f"SNR={c['min_snr_db']:.1f}dB")
    if c.get("agreement") is not None:
        parts.append(f"top-1 agreement={agree(c)}")
    if c.get("size") is not None:
        parts.append(f"size={c['size']}B")
    if c.get("latency_ms") is not None:
        parts.append(f"latency={c['latency_ms']:.3f}ms")
    if c.get("task_metric"):
        parts.append("task=" + task(c))
    return " ".join(parts)


def console_table(report: dict[str, Any]) -> str:
    """The terminal view: one line per case, then the verdict."""
    rows = [("case", "status", "size", "latency ms", "max|d|", "SNR dB", "why")]
    for c in report["cases"]:
        rows.append((c["id"], label(c), size(c.get("size")), num(c.get("latency_ms"), "{:.3f}"),
                     num(c.get("max_abs")), num(c.get("min_snr_db"), "{:.1f}"),
                     "; ".join(c.get("messages", []))[:120]))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(6)) + "  " + r[6] for r in rows]
    cached = sum(1 for m in report["models"] if m.get("cached"))
    lines.append("")
    lines.append(totals_text(report["totals"])
                 + (f"; {cached} of {len(report['models'])} models unchanged (cached)" if cached else "")
                 + (f"; NOT CHECKED by any shard: {', '.join(report['missing_models'])}" if report.get("missing_models") else ""))
    lines.append(f"verdict: {verdict(report)} (exit code {report['exit_code']})")
    return "\n".join(lines)
