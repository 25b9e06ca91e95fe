"""Generative artifacts in a ``convert`` run: a keras-hub causal LM's decoder with a KV cache
in each of TFLite and ONNX (``generate.tflite``, ``generate.onnx``), their weight-only
quantized versions, each checked by generating.

The check: for prompts of several lengths (valid ids of the vocabulary; one longer than the
TFLite prefill length, so that chunked prefill runs), Keras' own ``generate`` with the greedy
sampler gives the tokens, and one forward pass of Keras over the prompt and those tokens
gives the logits every step must reproduce. The artifact runs along Keras' tokens (prefill,
then one decode step per token, in the runtime worker, without TensorFlow) and:

- a float artifact passes when its next token is Keras' at every step, except where Keras'
  own top two logits are within the float tolerance of each other (a near-tie, reported),
  and its logits are within the float bound of the single pass at every step (decode after
  prefill = one pass over the whole sequence);
- a quantized artifact is judged like a language model's quantized logits: tie-aware
  next-token top-1 and mean KL against Keras (``edgekit.validate``), with the tokens matched
  reported.

Quantized TFLite decoders also run on the reference kernels (a row's kernel cell).
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit import errors
from edgekit.converters import FORMATS
from edgekit.quantize.recipes import Approach
from edgekit.results import ArtifactResult, Cell, Job, Status
from edgekit.runtimes import checked_kernel_paths
from edgekit.validate import compare, default_tolerance

FILES = {"tflite": "generate.tflite", "onnx": "generate.onnx"}
WEIGHT_ONLY = {Approach.DYNAMIC_INT8, Approach.FLOAT16, Approach.INT4, Approach.ONNX_DYNAMIC, Approach.ONNX_INT4}
CHECK_NEW_TOKENS = 8


def jobs_for(formats: list[str], recipes: list[Any]) -> list[Job]:
    """The generative jobs of a run: a float decoder per format that has one, then one per
    quantized recipe of that format (the kind ``generate`` in the label)."""
    out = [Job(f, FILES[f], FORMATS[f].runtime, "float32", kind="generate") for f in FILES if f in formats]
    made = {j.format for j in out}
    for r in recipes:
        if r.family in made:
            name = "generate_" + r.filename.split("model_", 1)[1]
            out.append(Job(r.family, name, FORMATS[r.family].runtime, r.policy, r, kind="generate"))
    return out


def check_prompts(layout: dict[str, Any], seed: int) -> tuple[list[list[int]], int]:
    """Prompts of 1, 3 and (prefill length + 3) tokens, as far as the cache holds them with
    the new tokens, drawn from the vocabulary with ``seed``; and the new tokens per prompt."""
    C, P, V = layout["cache_length"], layout["prefill_length"], max(2, int(layout["vocab"]))
    new = max(1, min(CHECK_NEW_TOKENS, C // 4))
    rng = np.random.default_rng(seed)
    lengths = sorted({n for n in (1, 3, P + 3) if n + new <= C} or {max(1, C - new)})
    return [[int(x) for x in rng.integers(0, V, n)] for n in lengths], new


def judge(cases: list[dict[str, Any]], runs: list[dict[str, Any]], policy: str) -> tuple[bool, Any, dict[str, Any]]:
    """(passed, comparison of the step logits, what the matrix and manifest say)."""
    ref = np.concatenate([c["logits"] for c in cases])
    got = np.concatenate([np.asarray(r["logits"]) for r in runs])
    keras_tokens = np.concatenate([c["generated"] for c in cases])
    float_art = policy == "float32"
    tol = (replace(default_tolerance("float32"), kind="lm") if float_art else default_tolerance(policy, "lm"))
    comp = compare({"logits": ref}, {"logits": got}, {"logits": tol})
    chosen = got.argmax(-1)
    top2 = np.sort(ref, axis=-1)[:, -2:]
    tie = tol.bound(float(np.abs(ref).max())) if float_art else None
    matched = int(np.sum(chosen == keras_tokens))
    diverged, near_ties = [], 0
    step0 = 0
    for ci, c in enumerate(cases):
        for t in range(len(c["generated"])):
            i = step0 + t
            if chosen[i] != keras_tokens[i] and tie is not None:  # quantized: judged by top-1 and KL
                gap = float(top2[i, 1] - top2[i, 0])
                if gap <= tie:
                    near_ties += 1
                else:
                    diverged.append({"prompt": ci, "step": t, "keras": int(keras_tokens[i]), "artifact": int(chosen[i]),
                                     "keras_top2_gap": gap})
        step0 += len(c["generated"])
    info = {"prompt_lengths": [len(c["prompt"]) for c in cases], "steps": int(len(keras_tokens)), "matched": matched,
            "near_ties": near_ties, "diverged": diverged[:5], "max_logit_diff": comp.max_abs,
            "prefill_ms": float(np.mean([r["prefill_ms"] for r in runs])),
            "decode_ms_per_token": _mean([r["decode_ms_per_token"] for r in runs]),
            "criterion": ("next token = Keras greedy (near-ties excepted), step logits within " + tol.describe()
                          if float_art else tol.describe() + "; tokens matched reported")}
    passed = bool(comp.passed and (not float_art or not diverged))
    return passed, comp, info


def _mean(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return float(np.mean(vals)) if vals else None


def summary(info: dict[str, Any]) -> str:
    """``12/12 next tokens as Keras' greedy (prompts of 1, 3, 11 tokens), ...`` for the matrix."""
    ties = f", {info['near_ties']} near-tie(s)" if info["near_ties"] else ""
    dec = info["decode_ms_per_token"]
    return (f"generation: {info['matched']}/{info['steps']} next tokens as Keras' greedy (prompts of "
            f"{', '.join(map(str, info['prompt_lengths']))} tokens{ties}); worst step-logit |d| "
            f"{info['max_logit_diff']:.2g} against one pass over the whole sequence; prefill {info['prefill_ms']:.2f} ms, "
            f"decode {'-' if dec is None else f'{dec:.2f}'} ms/token")


def record(row: ArtifactResult, cases: list[dict[str, Any]], runs: list[dict[str, Any]], policy: str) -> None:
    """Judge a decoder's run and write the verdict into its row (``convert`` and ``compare``)."""
    passed, row.comparison, info = judge(cases, runs, policy)
    row.tolerances = {o.name: o.tolerance for o in row.comparison.outputs}
    row.meta["generation"] = info
    row.latency = {"median_ms": info["decode_ms_per_token"] or 0.0, "prefill_ms": info["prefill_ms"]}
    row.status = Status.PASS if passed else Status.MISMATCH
    if not passed:
        row.stage, row.error = "compare", why_failed(info, row.comparison)
    row.notes.append(summary(info))


def why_failed(info: dict[str, Any], comp: Any) -> str:
    parts = []
    if info["diverged"]:
        d = info["diverged"][0]
        parts.append(f"{len(info['diverged'])} step(s) differ from Keras' greedy tokens beyond a near-tie "
                     f"(first: prompt {d['prompt']}, step {d['step']}: {d['artifact']} instead of {d['keras']})")
    parts += comp.failures()
    return "; ".join(parts)


class GenerativeSteps:
    """Export, quantize and check the generative artifacts of one run (``ctx``: the run's
    ``edgekit.artifacts.Context``; ``staged``: where finished artifacts are listed)."""

    def __init__(self, ctx: Any, steps: Any, layout: dict[str, Any]) -> None:
        self.ctx, self.steps, self.layout = ctx, steps, layout
        self.exported: dict[str, str] = {}
        self.cases: list[dict[str, Any]] = []  # Keras' greedy tokens and logits, once per run

    def rows(self) -> list[ArtifactResult]:
        ctx = self.ctx
        jobs = jobs_for(list(ctx.opts.formats), ctx.opts.recipes())
        if not jobs:
            return []
        prompts, new = check_prompts(self.layout, ctx.opts.seed)
        ctx.say(f"generation: Keras greedy on {len(prompts)} prompt(s) of {', '.join(str(len(p)) for p in prompts)} "
                f"token(s), {new} new each")
        self.cases = ctx.pool.tf.call("edgekit.tasks:generative_reference", ctx.source.to_json(), ctx.opts.task,
                                      prompts, new, timeout=ctx.opts.timeout, tag="generation:reference",
                                      on_progress=ctx.say)
        rows = [self._row(job, f"[gen {i}/{len(jobs)}] {job.label}") for i, job in enumerate(jobs, 1)]
        if ctx.opts.tokenizer:
            note = self._tokenizer_note()
            for r in rows:
                r.notes.append(note)
        return rows

    def _tokenizer_note(self) -> str:
        """Whether the device's tokenizer (no TensorFlow) gives keras-hub's ids on sample texts."""
        from edgekit.text_tokenizer import SAMPLES, load

        ctx = self.ctx
        path = os.path.abspath(ctx.opts.tokenizer)
        theirs = ctx.pool.tf.call("edgekit.text_tokenizer:keras_hub_ids", path, SAMPLES, timeout=ctx.opts.timeout,
                                  tag="tokenizer")
        try:
            mine = [load(path).encode(t) for t in SAMPLES]
        except errors.MissingDependencyError as exc:
            return f"tokenizer copied beside the artifacts; not run here: {exc}"
        if theirs is None:
            return "tokenizer copied beside the artifacts; keras-hub's own could not run here to compare with it"
        same = sum(a == b for a, b in zip(mine, theirs))
        if same == len(SAMPLES):
            return f"tokenizer: the device tokenizer gives keras-hub's ids on {same} sample texts"
        return (f"tokenizer: WARNING the device tokenizer differs from keras-hub's on {len(SAMPLES) - same} of "
                f"{len(SAMPLES)} sample texts: --prompt text may not encode as the model was trained")

    def _row(self, job: Job, prefix: str) -> ArtifactResult:
        ctx = self.ctx
        row = ArtifactResult(job.format, job.filename, job.recipe, runtime=job.runtime, kind="generate")
        row.meta["generative"] = self.layout
        recipe = job.recipe
        if recipe is not None and recipe.approach not in WEIGHT_ONLY:
            row.status = Status.SKIPPED
            row.error = (f"{recipe.mode}: a generative decoder takes weight-only recipes (dynamic, float16, int4); "
                         f"activation calibration and the per-layer search run on the single-pass artifact")
            ctx.say(f"{prefix}: n/a ({row.error})")
            return row
        base = self.exported.get(job.format)
        if recipe is not None and base is None:
            row.status, row.error = Status.SKIPPED, "the float decoder it is quantized from failed"
            return row
        staged = ctx.staging / job.filename
        ctx.say(f"{prefix}: converting")
        try:
            if recipe is None:
                row.meta.update(ctx.pool.tf.call("edgekit.tasks:export_generative", ctx.source.to_json(), job.format,
                                                 str(staged), self.layout, ctx.opts.opset, ctx.opts.task,
                                                 timeout=ctx.opts.timeout, tag=f"export:{job.label}",
                                                 on_progress=ctx.say))
            else:
                quantizer = FORMATS[job.format].quantizer
                made = ctx.pool.rt.call(quantizer, base, str(staged), replace(recipe, fallback=False).to_json(), None,
                                        {"layers": list(ctx.spec.layers), "kernel_layers": list(ctx.spec.kernel_layers)}, timeout=ctx.opts.timeout,
                                        tag=f"export:{job.label}", on_progress=ctx.say)
                row.notes.extend(made.pop("notes", []))
                row.meta.update(made)
        except errors.WriteFailure:
            raise
        except errors.EdgekitError as exc:
            row.status = Status.SKIPPED if isinstance(exc, errors.NotApplicable) else Status.ERROR
            row.stage = "" if row.status is Status.SKIPPED else "convert"
            row.error = str(exc).replace(str(ctx.staging), str(ctx.out))
            ctx.say(f"{prefix}: {'n/a' if row.status is Status.SKIPPED else 'conversion failed'}: {row.error}")
            return row
        row.convert_s = row.meta.pop("convert_s", None)
        if recipe is None:
            self.exported[job.format] = str(staged)
        ctx.say(f"{prefix}: generating")
        try:
            runs = ctx.pool.rt.call("edgekit.generate:check_run", str(staged), self.cases, "xnnpack",
                                    timeout=ctx.opts.timeout, tag=f"run:{job.label}", on_progress=ctx.say)
        except errors.EdgekitError as exc:
            row.status, row.stage, row.error = Status.ERROR, "run", str(exc)
            ctx.say(f"{prefix}: {row.error}")
            return row
        record(row, self.cases, runs, job.policy)
        if recipe is not None and "reference" in checked_kernel_paths(job.runtime, ctx.opts.kernels):
            row.kernels["reference"] = self._reference_cell(job, staged)
            if row.kernels["reference"].status is not Status.PASS:
                row.notes.append(f"kernel paths: deploy on xnnpack; fails on reference ({row.kernels['reference'].error})")
        self.steps.staged.append((job, row, staged))
        ctx.say(f"{prefix}: {row.status}" + (f" ({row.error})" if row.error else ""))
        return row

    def _reference_cell(self, job: Job, staged: Path) -> Cell:
        ctx = self.ctx
        try:
            runs = ctx.pool.rt.call("edgekit.generate:check_run", str(staged), self.cases, "reference",
                                    timeout=ctx.opts.timeout, tag=f"run:{job.label}@reference")
        except errors.EdgekitError as exc:
            return Cell(Status.ERROR, error=f"reference kernels: {exc}")
        passed, comp, info = judge(self.cases, runs, job.policy)
        cell = Cell(Status.PASS if passed else Status.MISMATCH, comparison=comp,
                    latency={"median_ms": info["decode_ms_per_token"] or 0.0})
        if not passed:
            cell.error = "reference kernels: " + why_failed(info, comp)
        return cell


def layout_for(tf_call: Any, opts: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(the decoder layout, None) when this run makes generative artifacts; (None, why not)
    for a causal LM whose cache layout edgekit does not know (an InputError instead where
    ``--task causal-lm`` or ``--max-cache-length`` asked for a decoder); (None, None) else."""
    if not opts.generative or not any(f in FILES for f in opts.formats):
        return None, None
    try:
        return tf_call("generative_layout", opts.task, opts.max_cache_length, tag="generation:layout"), None
    except errors.InputError as exc:
        if opts.task == "causal-lm" or opts.max_cache_length is not None:
            raise
        return None, str(exc)


def unknown_rows(opts: Any, why: str) -> list[ArtifactResult]:
    """The generative rows of a causal LM edgekit cannot export as a decoder: n/a, saying why."""
    return [ArtifactResult(j.format, j.filename, j.recipe, runtime=j.runtime, kind="generate", status=Status.SKIPPED,
                           error=why) for j in jobs_for(list(opts.formats), opts.recipes())]
