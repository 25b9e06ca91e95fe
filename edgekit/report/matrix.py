"""The agreement matrix as terminal text: one row per artifact."""
from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit.converters import FORMATS
from edgekit.results import Status
from edgekit.units import agreement_text, size_text, worst

if TYPE_CHECKING:
    from edgekit.pipeline import ConvertResult
    from edgekit.results import ArtifactResult, Cell


def human_size(n: int | None) -> str:
    """The one size format (decimal units): see ``edgekit.units.size_text``."""
    return size_text(n)


def _num(x: float | None, fmt: str = ".2g") -> str:
    return "-" if x is None else format(x, fmt)


def _top1(c: object) -> str:
    """Tie-aware top-1 agreement, with the strict one where they differ (as ``check`` shows)."""
    outs = getattr(c, "outputs", ())
    kls = [o.kl for o in outs if getattr(o, "kl", None) is not None]
    cos = [o.cosine for o in outs if o.tolerance.kind == "features" and o.cosine is not None]
    return agreement_text(worst(o.top1_agreement for o in outs), worst(o.top1_strict for o in outs),
                          min(cos) if cos else None, max(kls) if kls else None)


def _task_cells(t: dict | None) -> list[str]:
    """Metric and drop; with several labelled outputs, each output's, named."""
    if not t:
        return ["-", "-"]
    per = t.get("outputs")
    if not per:
        return [f"{t['value']:.2f}", f"{t['drop']:+.2f}"]
    return [" ".join(f"{n}:{v['metric']} {v['value']:.4g}" for n, v in per.items()),
            " ".join(f"{n} {v['drop']:+.3g}" for n, v in per.items())]


def truth_cell(c: object) -> str:
    """max|artifact - float64 truth|, marked ``*`` where only "no worse than Keras" passed it."""
    outs = [o for o in getattr(c, "outputs", ()) if o.truth_abs is not None]
    if not outs:
        return "-"
    return f"{max(o.truth_abs for o in outs):.2g}" + ("*" if any(o.judged_by == "truth" for o in outs) else "")


def truth_lines(info: dict | None) -> list[str]:
    """One line on the float64 truth: Keras float32's own error, and where the inputs are ill-conditioned."""
    if not info:
        return []
    if not info.get("available"):
        return [f"float64 truth: none ({info.get('reason')}); float artifacts judged by the fixed bound only"]
    errs = info.get("keras_float32_error", {})
    ill = [k for k, v in info.get("ill_conditioned", {}).items() if v]
    line = ("float64 truth (twin of the model, " + f"{info['seconds']:.1f} s): Keras float32 is "
            + ", ".join(f"{e:.2g} from it on {k!r}" for k, e in errs.items()))
    if ill:
        line += (f"; ILL-CONDITIONED inputs on {', '.join(map(repr, ill))} (Keras float32 itself is off by a third "
                 f"of the bound or more): "
                 f"float artifacts there are judged only by their distance from the float64 result, "
                 f"up to {info['factor']:g}x Keras' own (*)")
    return [line]


def _head(result: "ConvertResult") -> list[str]:
    head = ["artifact", "size", "x f32", "convert", "latency", "max|d|", "max rel", "vs f64", "SNR dB", "top-1"]
    if result.eval_info is not None:
        several = len(result.eval_info.get("outputs") or {}) > 1
        head += ["task metric" if several else result.eval_info["metric"][:4], "drop"]
    return head + ["criterion", "result"]


def _row(result: "ConvertResult", r: "ArtifactResult") -> list[str]:
    """One artifact's line: its size, times, agreement with the model, criterion and result."""
    task = result.eval_info is not None
    name = r.filename or r.format
    fmt = FORMATS.get(r.format)
    if fmt is not None and fmt.directory_marker is not None:  # a directory: shown as one
        name += "/"
    tol = next(iter(r.tolerances.values()), None)
    c = r.comparison
    ref_size = result.float_size(r.format, r.kind) if r.recipe is not None else None
    snr = c.min_snr_db if c is not None else None
    row = [
        name,
        human_size(r.size),
        f"{r.size / ref_size:.2f}" if (ref_size and r.size) else "-",
        "-" if r.convert_s is None else f"{r.convert_s:.1f} s",
        "-" if not r.latency else f"{r.latency['median_ms']:.2f} ms",
        _num(c.max_abs if c is not None else None),
        _num(c.max_rel if c is not None else None),
        truth_cell(c),
        "-" if snr is None else ("inf" if snr == float("inf") else f"{snr:.1f}"),
        _top1(c),
    ]
    if task:
        row += _task_cells(r.task)
    crit = "-" if tol is None else tol.short()
    if task and r.recipe is not None and result.eval_info.get("max_accuracy_drop") is not None:
        crit = f"drop<={result.eval_info['max_accuracy_drop']:g}"
    return row + [crit, Status(r.status).label]


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned columns as wide as their widest cell, under a rule."""
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return lines


def _footer(result: "ConvertResult") -> str:
    """The lines under the tables: the inputs, criteria, calibration, evaluation, where it all is."""
    n_in = result.feeds_info
    out = (
        f"\n\ninputs: {n_in['source']} (batch {n_in['batch']}); "
        f"float criterion: max|d| <= atol + rtol x max|ref| per output; max rel = max|d| / max|ref|; "
        f"quantized: SNR and top-1 against the float model (LM logits: next-token top-1 and mean KL; embeddings and encoder states: SNR and cosine); vs f64 = max|d| against the float64 twin"
    )
    if n_in.get("second_shapes"):
        dims = lambda m: ", ".join(f"{k} {tuple(v)}" for k, v in m.items())  # noqa: E731
        out += (f"\ncheck sizes for open dimensions: {dims(n_in['shapes'])}; artifacts that keep them are "
                f"checked again at {dims(n_in['second_shapes'])}")
    for line in truth_lines(n_in.get("truth")):
        out += "\n" + line
    if result.calibration:
        cal = result.calibration
        out += f"\ncalibration: {cal['description']}" + ("" if cal["meaningful"] else " -- quantized results are NOT meaningful")
    if result.eval_info:
        e = result.eval_info
        scores = ", ".join(f"{n}:{v['metric']} {v['model']:.4g}" for n, v in (e.get("outputs") or {}).items())
        out += f"\nevaluation: {e['description']}; the Keras model scores " + (
            scores if len(e.get("outputs") or {}) > 1 else f"{e['metric']} {e['model']:.2f}")
    return out + f"\nartifacts and manifest.json in {result.out_dir}"


def render(result: "ConvertResult") -> str:
    out = "\n".join(_table(_head(result), [_row(result, r) for r in result.rows]))
    notes = []
    for r in result.rows:
        if r.error:
            notes.append(f"  {r.label}: {r.error}")
        for n in r.notes:
            notes.append(f"  {r.label}: {n}")
    dev = render_devices(result)
    if dev:
        out += "\n\n" + dev
    if notes:
        out += "\n\n" + "\n".join(notes)
    return out + _footer(result)


def _cell(c: "Cell", host_ms: float | None) -> str:
    if c.status in (Status.NOT_APPLICABLE, Status.UNAVAILABLE, Status.ERROR):
        return c.status.label
    parts = [c.status.label]
    lat = (c.latency or {}).get("median_ms")
    if lat is not None:
        parts.append(f"{lat:.2f} ms" + (" emu" if c.emulated else ""))
    if c.comparison is not None and c.comparison.max_abs is not None:
        parts.append(f"d={c.comparison.max_abs:.2g}")
    vs = c.vs_host or {}
    if vs.get("bit_exact"):
        parts.append("| host: bit-exact")
    elif vs.get("max_abs") is not None:
        verdict = {True: "within tol", False: "OUTSIDE tol", None: "not bit-exact"}[vs.get("within_tolerance")]
        parts.append(f"| host: {vs['max_abs']:.1g} {verdict}")
    return " ".join(parts)


def render_devices(result: "ConvertResult") -> str:
    """Per-device cells: status, median latency (emulated ones marked: not comparable with
    native), max|d| against the model, and agreement with the host (``= host``: bit-exact)."""
    names = [d["name"] for d in result.devices[1:]]
    if not names:
        return ""
    host = result.devices[0]["name"]
    head = ["artifact", host, *[n + (" (emulated)" if d.get("emulated") else "") for n, d in zip(names, result.devices[1:])]]
    rows = []
    for r in result.rows:
        if r.status == Status.SKIPPED:
            continue
        lat = (r.latency or {}).get("median_ms")
        hostcell = Status(r.status).label
        if lat is not None:
            hostcell += f" {lat:.2f} ms"
        rows.append([r.filename or r.format, hostcell, *[_cell(r.devices[n], lat) if n in r.devices else "-" for n in names]])
    lines = ["devices: " + ", ".join(f"{d['name']} ({d['kind']}{', ' + d['qemu_cpu'] if d.get('qemu_cpu') else ''})"
                                     for d in result.devices)]
    lines += _table(head, rows)
    for r in result.rows:
        for n, c in r.devices.items():
            if c.error and c.status != Status.NOT_APPLICABLE:
                lines.append(f"  {r.label} on {n}: {c.error}")
            for note in c.notes:
                lines.append(f"  {r.label} on {n}: {note}")
    lines.append("d = max|device - model|; host: the device against the host's own output (float: within the "
                 "artifact's tolerance; integer: bit-exact or not); emulated ('emu') latencies are not comparable with native ones")
    return "\n".join(lines)
