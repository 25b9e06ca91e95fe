"""The agreement matrix as terminal text: one row per artifact."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgekit.pipeline import ConvertResult


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _num(x: float | None, fmt: str = ".2g") -> str:
    return "-" if x is None else format(x, fmt)


def _top1(c: object) -> str:
    vals = [o.top1_agreement for o in getattr(c, "outputs", ()) if o.top1_agreement is not None]
    return "-" if not vals else f"{100 * min(vals):.0f}%"


def render(result: "ConvertResult") -> str:
    head = ["artifact", "size", "convert", "latency", "max|d|", "max rel", "top-1", "tolerance", "result"]
    rows = []
    for r in result.rows:
        name = r.path.rsplit("/", 1)[-1] if r.path else r.format
        if r.path and r.format == "saved_model":
            name += "/"
        tol = next(iter(r.tolerances.values()), None)
        c = r.comparison
        rows.append([
            name,
            human_size(r.size),
            "-" if r.convert_s is None else f"{r.convert_s:.1f} s",
            "-" if not r.latency else f"{r.latency['median_ms']:.2f} ms",
            _num(c.max_abs if c else None),
            _num(c.max_rel if c else None),
            _top1(c),
            "-" if tol is None else f"{tol.atol:g}+{tol.rtol:g}x",
            {"pass": "PASS", "mismatch": "FAIL", "error": "ERROR", "skipped": "n/a"}[r.status],
        ])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    notes = []
    for r in result.rows:
        if r.error:
            notes.append(f"  {r.format}: {r.error}")
        for n in r.notes:
            notes.append(f"  {r.format}: {n}")
    out = "\n".join(lines)
    if notes:
        out += "\n\n" + "\n".join(notes)
    n_in = result.feeds_info
    out += (
        f"\n\ninputs: {n_in['source']} (batch {n_in['batch']}); "
        f"tolerance: max|d| <= atol + rtol x max|ref| per output; "
        f"max rel = max|d| / max|ref|\n"
        f"artifacts and manifest.json in {result.out_dir}"
    )
    return out
