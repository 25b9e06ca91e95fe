"""``--quantize auto``: a precision per Keras layer, chosen to a budget (runtime worker, no
TensorFlow).

1. Every layer with weights starts at its smallest precision: int4 (blockwise) where the op
   and its shape take it, else int8 (channelwise), activations float.
2. Each layer's cost is measured alone: the model with only that layer quantized, its
   noise-to-signal ratio against the model's own outputs on the check inputs.
3. The whole recipe is measured; while it misses the budget, the layer that costs most is
   raised one step (int4 -> int8 -> float), its cost alone at the new precision measured,
   and the recipe measured again. A candidate the runtime refuses costs infinitely much.

The budget is the ``mixed`` policy (SNR and top-1 against the model, edgekit.validate) unless
the run gives a labelled gate (``--max-accuracy-drop`` on ``--eval-data``), which the search
then meets on the labelled data. A kernel path the run requires that cannot run int4 (the
reference kernels return zeros for blockwise int4) removes int4 from the ladder, and the
row says so.
"""
from __future__ import annotations

import math
import tempfile
from typing import Any, Mapping

from edgekit.errors import ConversionError, NotApplicable
from edgekit.quantize.litert_quant import INT4_OPS, WeightOp, quantize_bytes, run_bytes
from edgekit.quantize.recipes import LAYER_PRECISIONS as LADDER  # smallest first


def _nsr(comp: Any) -> float:
    """The worst output's noise-to-signal power ratio, from the comparison's SNR (infinite
    where shapes, names or non-finite positions differ)."""
    snr = comp.min_snr_db
    if comp.error or snr is None or any(o.error for o in comp.outputs):
        return float("inf")
    return 10 ** (-snr / 10)


def _db(nsr: float) -> float:
    return float("inf") if nsr <= 0 else -10 * math.log10(nsr)


class _Judge:
    """Whether a candidate model meets the budget, and its error."""

    def __init__(self, context: Mapping[str, Any], workdir: str) -> None:
        from edgekit.validate import compare, default_tolerance

        self.feeds = context["feeds"]
        self.reference = context["reference"]
        self.workdir = workdir
        kinds = context.get("kinds") or {}
        self.tol = {name: default_tolerance("mixed", kinds.get(name)) for name in self.reference}
        self._compare = compare
        self.gate = context.get("gate")  # {"max_drop", "eval": (inputs, labels...), "refs"}
        self.evaluations = 0

    def __call__(self, buf: bytes) -> tuple[bool, float, str]:
        """(passes, noise-to-signal, what was measured); a model the runtime refuses fails
        with infinite noise (blockwise int4 of an all-zero block has scale 0, which XNNPACK
        rejects)."""
        from edgekit.errors import EdgekitError

        self.evaluations += 1
        try:
            out = run_bytes(buf, self.feeds, self.workdir)
        except EdgekitError as exc:
            return False, float("inf"), f"does not run ({str(exc).split(': ', 1)[-1][:120]})"
        comp = self._compare(self.reference, out, self.tol)
        nsr = _nsr(comp)
        if self.gate is not None:
            drop = self._drop(buf)
            return drop <= self.gate["max_drop"], nsr, f"drop {drop:.2f} points"
        return bool(comp), nsr, f"SNR {_db(nsr):.1f} dB"

    def _drop(self, buf: bytes) -> float:
        from edgekit.validate.metrics import task_row

        out = run_bytes(buf, self.gate["eval"].inputs, self.workdir)
        return float(task_row(out, self.gate["eval"], self.gate["refs"])["drop"])

    @property
    def budget(self) -> str:
        if self.gate is not None:
            return f"accuracy drop <= {self.gate['max_drop']:g} points on the labelled data"
        return "; ".join(dict.fromkeys(t.describe() for t in self.tol.values()))


def _groups(ops: list[WeightOp]) -> dict[str, list[WeightOp]]:
    """Ops by Keras layer (a layer is one unit of precision); ops with no known layer alone."""
    out: dict[str, list[WeightOp]] = {}
    for w in ops:
        out.setdefault(w.layer or w.tensor, []).append(w)
    return out


def search(buf: bytes, recipe: Any, ops: list[WeightOp], context: Mapping[str, Any],
           meta: dict[str, Any]) -> tuple[bytes, dict[str, str], dict[str, Any]]:
    """The smallest recipe found that meets the budget: (model, precision per scope, record)."""
    if not ops:
        raise NotApplicable("no layer has weights to quantize: the model stays float")
    from edgekit.worker import report as say

    block = recipe.block_size or 32
    allow_int4 = not context.get("no_int4")
    if not allow_int4:
        meta["notes"].append(context["no_int4"])
    groups = _groups(ops)
    lowest = {g: ("int4" if allow_int4 and any(w.int4_ok(block) for w in ws) else "int8") for g, ws in groups.items()}

    def precisions(levels: Mapping[str, str]) -> dict[str, str]:
        return {w.scope: levels[g] for g, ws in groups.items() for w in ws}

    def build(levels: Mapping[str, str]) -> bytes:
        if all(v == "float" for v in levels.values()):
            return buf
        return quantize_bytes(buf, recipe, ops, None, precisions(levels))[0]

    with tempfile.TemporaryDirectory(prefix="edgekit-auto-") as workdir:
        judge = _Judge(context, workdir)
        # each layer's own cost at its lowest precision, the rest float
        cost: dict[str, float] = {}
        for i, g in enumerate(groups, 1):
            levels = {h: (lowest[g] if h == g else "float") for h in groups}
            _, cost[g], _ = judge(build(levels))
            if i % 10 == 0 or i == len(groups):
                say(f"auto: measured {i}/{len(groups)} layers alone")
        levels = dict(lowest)
        estimate = dict(cost)
        steps: list[dict[str, Any]] = []
        raised: list[str] = []
        while True:
            model = build(levels)
            ok, nsr, what = judge(model)
            steps.append({"float": sum(v == "float" for v in levels.values()),
                          "int8": sum(v == "int8" for v in levels.values()),
                          "int4": sum(v == "int4" for v in levels.values()), "snr_db": _db(nsr), "passed": ok})
            if ok:
                break
            raisable = [g for g in groups if levels[g] != "float"]
            if not raisable:
                raise ConversionError(f"auto: no per-layer recipe meets {judge.budget}; even float weights give {what}")
            worst = max(raisable, key=lambda g: (estimate[g], sum(w.size for w in groups[g])))
            nxt = LADDER[LADDER.index(levels[worst]) + 1]
            say(f"auto: {what} misses the budget; {worst} {levels[worst]} -> {nxt}")
            raised.append(f"{worst} {levels[worst]}->{nxt}" + (" (did not run alone)" if math.isinf(cost[worst]) and
                                                               levels[worst] == lowest[worst] else ""))
            levels[worst] = nxt
            if nxt == "float":
                estimate[worst] = 0.0
            else:  # its cost alone at the new precision, measured
                _, estimate[worst], _ = judge(build({h: (nxt if h == worst else "float") for h in groups}))
        found = {
            "budget": judge.budget, "evaluations": judge.evaluations, "steps": steps, "raised": raised,
            "layer_cost_db": {g: (None if math.isinf(c) else round(_db(c), 2))
                              for g, c in sorted(cost.items(), key=lambda kv: -kv[1])},
            "int4_ops": list(INT4_OPS), "block_size": block,
        }
        meta["notes"].append(
            f"auto: {steps[-1]['int4']} layer(s) int4, {steps[-1]['int8']} int8, {steps[-1]['float']} float "
            f"meet {judge.budget} ({what}; {judge.evaluations} measurements"
            + (f"; raised: {', '.join(raised)}" if raised else "") + ")")
        return model, precisions(levels), found
