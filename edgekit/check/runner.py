"""``edgekit check``: every model of a configuration converted and checked, each artifact on
each device judged against tolerances, budgets, golden outputs and a baseline, the whole
written as one report.

A *case* is one model x artifact x device. Its status (``CaseStatus`` in edgekit/results.py)
is ``pass``, ``fail`` (a tolerance, budget, golden or regression breach: exit code 3),
``error`` (the artifact could not be produced or run: exit 1) or ``skipped``. Runs continue
past failures.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from edgekit import __version__, errors
from edgekit.check.config import Budgets, CheckConfig, ModelCase
from edgekit.check.golden import read_golden, tool_drift, write_golden
from edgekit.fsutil import atomic_write_json, sha256_of
from edgekit.results import CaseStatus, Cell, Status
from edgekit.validate.compare import Comparison

REPORT_VERSION = 1
Say = Callable[[str], None]
Case = dict[str, Any]
# The packages whose sources decide what a conversion produces and how it is judged (devices:
# the profiles, their runtimes and tolerances), and the kinds of their files that count.
CODE_PACKAGES = ("edgekit", "edgekit.converters", "edgekit.quantize", "edgekit.devices")
_CODE_SUFFIXES = (".py", ".toml")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"2/3"`` -> (2, 3): the second of three shards (1-based)."""
    if not text:
        return None
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise errors.InputError(f"--shard {text!r}: expected K/N, e.g. 2/3") from None
    if not (n >= 1 and 1 <= k <= n):
        raise errors.InputError(f"--shard {text!r}: expected 1 <= K <= N")
    return k, n


def shard_models(names: list[str], shard: tuple[int, int] | None) -> list[str]:
    """A deterministic slice: models sorted by name, dealt round-robin over the N shards."""
    if shard is None:
        return list(names)
    k, n = shard
    return [m for i, m in enumerate(sorted(names)) if i % n == k - 1]


def _file_digest(spec: str | None) -> str | None:
    if not spec or spec in ("digits", "random") or spec.startswith("builtin:"):
        return spec
    p = Path(spec.rsplit(":", 1)[0] if ".py:" in spec else spec)  # a builder: its module
    return sha256_of(p) if p.exists() else None


_CODE_DIGEST: str | None = None


def code_files() -> list[tuple[str, Path]]:
    """(package-qualified name, path) of every source file ``code_digest`` covers, in order."""
    import importlib

    files = []
    for name in CODE_PACKAGES:
        root = Path(importlib.import_module(name).__file__).parent
        for f in sorted(p for p in root.rglob("*") if p.suffix in _CODE_SUFFIXES and p.is_file()):
            files.append((f"{name}/{f.relative_to(root).as_posix()}", f))
    return files


def code_digest() -> str:
    """sha256 of the sources of edgekit and of its converters, quantization recipes and device
    profiles: an edited (editable) install invalidates caches even when its version number
    did not change."""
    global _CODE_DIGEST
    if _CODE_DIGEST is None:
        h = hashlib.sha256()
        for name, f in code_files():
            h.update(name.encode())
            h.update(f.read_bytes())
        _CODE_DIGEST = h.hexdigest()
    return _CODE_DIGEST


def cache_key(case: ModelCase, golden_meta: dict[str, Any] | None, tools: dict[str, str]) -> str:
    """Changes when anything that decides the artifacts or their numbers changes: the model's
    bytes (or its builder module), the data files, the conversion settings, the golden set,
    edgekit's and the tools' versions."""
    parts = {
        "edgekit": __version__,
        "edgekit_code": code_digest(),
        "tools": tools,
        "case": case.conversion_json(),
        "files": {"model": _file_digest(case.model), **{k: _file_digest(getattr(case.options, k)) for k in
                                                         ("inputs", "calibration", "eval_data", "custom_objects")},
                  "quantize_recipe": (_file_digest(case.options.quantize_recipe)
                                      if isinstance(case.options.quantize_recipe, str) else None)},
        "golden": golden_meta.get("arrays") if golden_meta else None,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def median_ms(lat: dict[str, Any] | None) -> float | None:
    """The median of a latency record (None when there is none)."""
    return None if not lat else lat.get("median_ms")


def _finite(values: Iterable[float | None]) -> list[float]:
    """The finite numbers among ``values`` (None, NaN and infinities left out)."""
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def _comparison(d: dict[str, Any] | None) -> Comparison | None:
    return None if d is None else Comparison.from_json(d)


def _agreement(comp: Comparison | None) -> float | None:
    """Top-1 agreement for classifier outputs, cosine similarity for the others; the worst output."""
    outs = comp.outputs if comp is not None else ()
    vals = _finite(o.top1_strict if o.top1_strict is not None else o.cosine for o in outs)
    return min(vals) if vals else None


def _top1_fields(comp: Comparison | None) -> dict[str, float | None]:
    """The worst output's top-1 agreement, tie-aware and strict (fractions), as ``convert``
    shows them, and the worst cosine for outputs that are not classifier rows."""
    from edgekit.units import worst

    outs = comp.outputs if comp is not None else ()
    return {"top1": worst(_finite(o.top1_agreement for o in outs)),
            "top1_strict": worst(_finite(o.top1_strict for o in outs)),
            "cosine": worst(_finite(o.cosine for o in outs)),
            "kl": max(_finite(o.kl for o in outs), default=None)}


def _error_stats(comp: Comparison | None) -> dict[str, Any]:
    """The worst (finite) max|d| and max rel, the worst SNR and the error histograms of a
    comparison."""
    outs = comp.outputs if comp is not None else ()
    abs_, rel = _finite(o.max_abs for o in outs), _finite(o.max_rel for o in outs)
    return {"max_abs": max(abs_) if abs_ else None, "max_rel": max(rel) if rel else None,
            "min_snr_db": comp.min_snr_db if comp is not None else None,
            "hist": {o.name: list(o.abs_hist) for o in outs if o.abs_hist}}


def fmt_size(n: int | None) -> str:
    """Decimal units, as budgets are written ("40 KB" = 40,000 bytes): the one size format."""
    from edgekit.units import size_text

    return size_text(n)


def _new_case(model: ModelCase, art: dict[str, Any], device: str, cell: Cell | None,
              comp: Comparison | None) -> Case:
    """A passing case with the numbers of one artifact on one device; judging may fail it."""
    host = device == model.devices[0]
    stats = _error_stats(comp)
    return {
        "id": f"{model.name}/{art['label']}@{device}",
        "model": model.name, "artifact": art["label"], "format": art["format"], "device": device,
        "runtime": art.get("runtime"), "status": CaseStatus.PASS, "kind": None, "messages": [],
        "emulated": bool(cell and cell.emulated),
        "size": art.get("size"), "latency_ms": median_ms(art.get("latency") if host else (cell.latency if cell else None)),
        "convert_s": art.get("convert_s"),
        "max_abs": stats["max_abs"], "max_rel": stats["max_rel"], "min_snr_db": stats["min_snr_db"],
        "agreement": _agreement(comp), **_top1_fields(comp),
        "task_metric": art.get("task_metric"), "path": art.get("path"), "notes": art.get("notes", []),
        "hist": stats["hist"], "quantized": art.get("recipe") is not None,
    }


def _breach(case: Case, kind: str, msg: str) -> None:
    """A failed check: the first one decides the case's kind."""
    if case["status"] == CaseStatus.PASS:
        case["status"], case["kind"] = CaseStatus.FAIL, kind
    case["messages"].append(msg)


def _settle(case: Case, status: CaseStatus, msg: str, kind: str | None = None) -> Case:
    """A case decided before any budget is looked at (an error, or nothing to judge)."""
    case["status"] = status
    if kind is not None:
        case["kind"] = kind
    case["messages"].append(msg)
    return case


def _judge_cell(case: Case, cell: Cell | None, device: str) -> bool:
    """A good artifact on a device other than the host: the device's cell decides. True when
    that settles the case (not run there, or it failed to run)."""
    if cell is None or cell.status == Status.NOT_APPLICABLE:
        _settle(case, CaseStatus.SKIPPED, (cell.error if cell else None) or f"not run on {device}")
        return True
    if cell.status.failed:
        _settle(case, CaseStatus.ERROR, cell.error or str(cell.status), "device")
        return True
    if cell.status == Status.MISMATCH:
        _breach(case, "tolerance", f"on {device}: " + (cell.error or "outside tolerance"))
    vs = cell.vs_host or {}
    case["vs_host"] = vs
    case["notes"] = case["notes"] + cell.notes + (["bit-exact with the host"] if vs.get("bit_exact") else [])
    return False


_STAGE_KINDS = {"convert": "conversion", "run": "runtime"}


def _judge_row(case: Case, art: dict[str, Any]) -> bool:
    """The artifact's own status on the host. True when that settles the case."""
    st = Status(art["status"])
    if st == Status.ERROR:
        _settle(case, CaseStatus.ERROR, art.get("error") or "failed",
                _STAGE_KINDS.get(art.get("stage"), art.get("stage") or "error"))
        return True
    if st in (Status.SKIPPED, Status.REJECTED):
        _settle(case, CaseStatus.SKIPPED, art.get("error") or str(st))
        return True
    if st == Status.MISMATCH:
        _breach(case, "budget" if art.get("stage") == "accuracy" else "tolerance", art.get("error") or "outside tolerance")
    return False


def _judge_budgets(case: Case, b: Budgets, device: str) -> None:
    label, size, lat = case["artifact"], case["size"], case["latency_ms"]
    lim = b.pick(b.max_size, label)
    if lim is not None and size is not None and size > lim:
        _breach(case, "budget", f"size {fmt_size(size)} ({size} B) > budget {fmt_size(lim)} ({lim} B)")
    lim = b.pick(b.max_latency_ms, label)
    if lim is not None and case["emulated"]:
        case["notes"] = case["notes"] + ["latency budget not applied: emulated latency is not comparable with native"]
    elif lim is not None and lat is not None and lat > lim:
        _breach(case, "budget", f"latency {lat:.3f} ms (median) > budget {lim:g} ms on {device}")
    tm = case["task_metric"]
    if b.max_accuracy_drop is not None and tm and case["quantized"] and tm.get("drop") is not None \
            and tm["drop"] > b.max_accuracy_drop and not any("accuracy" in m for m in case["messages"]):
        _breach(case, "budget", f"{tm.get('metric', 'metric')} drop {tm['drop']:.2f} points > budget {b.max_accuracy_drop:g}")
    if b.min_agreement is not None and case["agreement"] is not None and case["agreement"] < b.min_agreement:
        _breach(case, "budget", f"agreement with the model {case['agreement']:.4f} < budget {b.min_agreement:g}")
    if b.min_snr_db is not None and case["min_snr_db"] is not None and case["min_snr_db"] < b.min_snr_db:
        _breach(case, "budget", f"SNR {case['min_snr_db']:.1f} dB < budget {b.min_snr_db:g} dB")


def _judge_golden(case: Case, gold: Comparison | None, ref: Comparison | None) -> None:
    """The artifact against stored golden outputs (compared on the host); ``ref``: the live
    model against them."""
    if gold is None or gold.passed:
        return
    fails = [f"{o.name}: max|d| {o.max_abs}" if o.max_abs is not None else f"{o.name}: {o.error}"
             for o in gold.outputs if not o.passed]
    why = "; ".join(fails) or gold.error or "differs"
    if ref is not None and not ref.passed:
        why += " (the live model itself drifted from the golden outputs: see the reference case)"
    _breach(case, "golden", f"against golden outputs: {why}")


def _judge_baseline(case: Case, baseline: dict[str, dict[str, Any]], cfg: CheckConfig) -> None:
    prev = baseline.get(case["id"])
    if prev is None:
        case["notes"] = case["notes"] + ["new: not in the baseline"]
        return
    size, lat = case["size"], case["latency_ms"]
    ps, pl = prev.get("size"), prev.get("latency_ms")
    if ps and size is not None and size > ps * (1 + cfg.max_size_increase):
        _breach(case, "regression", f"size {size} B vs baseline {ps} B (+{size / ps - 1:.1%}, "
                                    f"limit +{cfg.max_size_increase:.0%})")
    if pl and lat is not None and lat > pl * (1 + cfg.max_latency_increase):
        _breach(case, "regression", f"latency {lat:.3f} ms vs baseline {pl:.3f} ms "
                                    f"(+{lat / pl - 1:.0%}, limit +{cfg.max_latency_increase:.0%})")
    case["baseline"] = {"size": ps, "latency_ms": pl}


def judge(model: ModelCase, art: dict[str, Any], device: str, manifest: dict[str, Any],
          baseline: dict[str, dict[str, Any]] | None, cfg: CheckConfig) -> Case:
    """One case from one manifest row: status, the kind of breach, and the numbers."""
    host = device == model.devices[0]
    raw = None if host else (art.get("devices") or {}).get(device)
    cell = None if raw is None else Cell.from_json(raw)
    comp = _comparison(art.get("comparison")) if host else (cell.comparison if cell else None)
    case = _new_case(model, art, device, cell, comp)
    if not host and Status(art["status"]) == Status.PASS and _judge_cell(case, cell, device):
        return case
    if _judge_row(case, art):
        return case
    _judge_budgets(case, model.budgets, device)
    if host:
        _judge_golden(case, _comparison(art.get("golden")), _comparison(manifest.get("golden_reference")))
    if baseline is not None:
        _judge_baseline(case, baseline, cfg)
    return case


def _reference_case(model: ModelCase, manifest: dict[str, Any], golden_meta: dict[str, Any],
                    tools: dict[str, str]) -> Case:
    """The live model against its golden outputs: drift of the model or of TensorFlow/Keras."""
    ref = _comparison(manifest.get("golden_reference"))
    if ref is None:  # (not ``or``: a Comparison that fails is falsy)
        ref = Comparison()
    drift = tool_drift(golden_meta.get("tools", {}), tools)
    case = {"id": f"{model.name}/reference@golden", "model": model.name, "artifact": "reference",
            "format": "keras", "device": "golden", "runtime": "tensorflow", "status": CaseStatus.PASS, "kind": None,
            "messages": [], "notes": [f"golden set of {golden_meta.get('created', '?')}"] + (
                [f"tools changed since: {', '.join(drift)}"] if drift else []),
            "max_abs": max((o.max_abs or 0.0 for o in ref.outputs), default=None),
            "hist": _error_stats(ref)["hist"], "drift": drift}
    if not ref.passed:
        case["status"], case["kind"] = CaseStatus.FAIL, "golden"
        fails = [f"{o.name}: max|d| {o.max_abs}" for o in ref.outputs if not o.passed]
        case["messages"].append("the model no longer computes its golden outputs: " + ("; ".join(fails) or ref.error or "")
                                + (f" (tools changed: {', '.join(drift)})" if drift else " (no tool version changed: the model did)"))
    return case


class CheckRun:
    """Runs the models of one configuration (or one shard of it) with one pair of workers."""

    def __init__(self, cfg: CheckConfig, out: Path | None = None, update_golden: bool = False,
                 baseline: str | None = None, shard: tuple[int, int] | None = None, use_cache: bool = True,
                 only: list[str] | None = None, say: Say | None = None, pool: Any = None,
                 force: bool = False) -> None:
        self.cfg, self.out = cfg, Path(out) if out else cfg.out
        self.force = force
        self.update_golden, self.shard, self.use_cache = update_golden, shard, use_cache
        self.say = say or (lambda _m: None)
        self._pool = pool
        self._own_pool = pool is None
        self.baseline = load_baseline(baseline) if baseline else None
        names = [m.name for m in cfg.models]
        if only:
            unknown = [n for n in only if n not in names]
            if unknown:
                raise errors.InputError(f"--only {', '.join(unknown)}: no such model in {cfg.path.name}; it has: {', '.join(names)}")
            names = [n for n in names if n in only]
        self.selected = shard_models(names, shard)

    @property
    def pool(self) -> Any:
        if self._pool is None:
            from edgekit.worker import WorkerPool

            self._pool = WorkerPool()
        return self._pool

    def run(self) -> dict[str, Any]:
        from edgekit.report.manifest import tool_versions

        t0 = time.perf_counter()
        tools = tool_versions()
        models_out, cases = [], []
        outd = self._out_dir()
        outd.open()  # the same rules as convert's --out (edgekit/outdir.py), for the whole run
        try:
            self._forget_removed_models()
            by_name = {m.name: m for m in self.cfg.models}
            for i, name in enumerate(self.selected, 1):
                self.say(f"[model {i}/{len(self.selected)}] {name}")
                info, mcases = self._one(by_name[name], tools)
                models_out.append(info)
                cases.extend(mcases)
        finally:
            outd.close()
            if self._own_pool and self._pool is not None:
                self._pool.close()
        report = {
            "report_version": REPORT_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "config": str(self.cfg.path),
            "config_fingerprint": self.cfg.fingerprint(),
            "all_models": sorted(m.name for m in self.cfg.models),
            "shard": list(self.shard) if self.shard else None,
            "models": models_out,
            "cases": cases,
            "tools": tools,
            "baseline": self.baseline is not None,
            "elapsed_s": round(time.perf_counter() - t0, 3),
        }
        finish(report)
        return report

    def _out_dir(self) -> Any:
        from edgekit.outdir import CHECK_MARKER, OutDir

        files = [getattr(m.options, k) for m in self.cfg.models for k in ("inputs", "calibration", "eval_data")]
        files += [m.options.quantize_recipe for m in self.cfg.models if isinstance(m.options.quantize_recipe, str)]
        files += [m.model for m in self.cfg.models if not m.model.startswith("builtin:") and ".py:" not in m.model]
        outd = OutDir(self.out, force=self.force, protected=[f for f in files if f and os.path.exists(f)],
                      planned=["models", ".cache", "report.json"], marker=CHECK_MARKER)
        outd.check()
        return outd

    def _forget_removed_models(self) -> None:
        """The marker lists the models whose outputs this directory holds. A run of the whole
        configuration removes those of models no longer in it (and nothing it did not list), so
        no stale artifacts look current; a shard or --only run only adds to the list."""
        from edgekit.fsutil import remove_path
        from edgekit.outdir import CHECK_MARKER

        marker = self.out / CHECK_MARKER
        try:
            listed = json.loads(marker.read_text()).get("models", [])
        except (OSError, ValueError, AttributeError, RecursionError):
            listed = []
        names = [m.name for m in self.cfg.models]
        prev = {n for n in listed if isinstance(n, str) and re.fullmatch(r"[A-Za-z0-9_.\-]+", n) and n not in (".", "..")}
        whole = self.shard is None and set(self.selected) == set(names)
        if whole:
            for n in sorted(prev - set(names)):
                remove_path(self.out / "models" / n)
                remove_path(self.out / ".cache" / f"{n}.json")
        keep = set(names) if whole else prev | set(self.selected)
        atomic_write_json(marker, {"made_by": "edgekit", "models": sorted(keep)})

    def _one(self, m: ModelCase, tools: dict[str, str]) -> tuple[dict[str, Any], list[Case]]:
        t0 = time.perf_counter()
        mout = self.out / "models" / m.name
        cache_file = self.out / ".cache" / f"{m.name}.json"
        info: dict[str, Any] = {"name": m.name, "source": m.model, "out": os.path.relpath(mout, self.out),
                                "cached": False, "convert_elapsed_s": 0.0, "golden": None, "error": None}
        try:
            golden = None if self.update_golden else read_golden(self.cfg.golden_dir, m.name)
        except errors.EdgekitError as exc:
            return self._model_error(m, info, exc, t0)
        key = cache_key(m, golden.meta if golden else None, tools)
        info["key"] = key
        manifest = self._cached(cache_file, key, mout) if (self.use_cache and not self.update_golden) else None
        if manifest is not None:
            info["cached"] = True
            self.say(f"  unchanged since the last run (cache key {key[:12]}): not reconverted")
            try:
                info["golden"] = json.loads(cache_file.read_text()).get("golden")
            except (OSError, json.JSONDecodeError):
                pass
        else:
            result, failure = self._convert(m, mout, golden, info)
            if failure is not None:
                return self._model_error(m, info, failure, t0)
            manifest = self._keep(m, result, mout, cache_file, key, info, tools)
        return info, self._cases(m, manifest, golden, info, tools, t0)

    def _convert(self, m: ModelCase, mout: Path, golden: Any,
                 info: dict[str, Any]) -> tuple[Any, errors.EdgekitError | None]:
        """(the ConvertResult, None), or (None, why the model could not be converted)."""
        from edgekit.pipeline import convert

        kw: dict[str, Any] = {}
        if golden is not None:
            kw = {"input_arrays": golden.inputs, "input_label": f"golden inputs ({golden.path.name})",
                  "golden_outputs": golden.outputs}
            info["golden"] = {"path": str(golden.path), "created": golden.meta.get("created"),
                              "tools": golden.tools}
        # the case's options as they are; the run sets only --force, and golden inputs replace --inputs
        options = m.options.replace(force=self.force, inputs=None if golden is not None else m.inputs)
        t_conv = time.perf_counter()
        try:
            result = convert(m.model, mout, options, progress=lambda msg: self.say("  " + msg), pool=self.pool, **kw)
        except errors.EdgekitError as exc:
            return None, exc
        except errors.InternalError as exc:  # a bug in edgekit: this model fails, the run goes on
            info["traceback"] = str(exc)
            return None, errors.ConversionError(f"internal error (a bug in edgekit; traceback in report.json): "
                                                f"{str(exc).splitlines()[0][:300]}")
        info["convert_elapsed_s"] = round(time.perf_counter() - t_conv, 3)
        return result, None

    def _keep(self, m: ModelCase, result: Any, mout: Path, cache_file: Path, key: str, info: dict[str, Any],
              tools: dict[str, str]) -> dict[str, Any]:
        """After a conversion: its manifest, and either the golden set written from it
        (--update-golden) or the cache entry that lets the next run skip it."""
        manifest_sha, manifest = _read_manifest(mout)
        if self.update_golden:
            shown = m.model if m.model.startswith("builtin:") else os.path.relpath(m.model, self.cfg.root)
            feeds_info = dict(result.feeds_info)
            if os.path.isabs(str(feeds_info.get("source", ""))):
                feeds_info["source"] = os.path.relpath(feeds_info["source"], self.cfg.root)
            path = write_golden(self.cfg.golden_dir, m.name, shown, result.feeds,
                                result.reference, feeds_info, tools)
            self.say(f"  golden outputs written to {path}")
            info["golden"] = {"path": str(path), "updated": True, "tools": tools}
            # This run was not compared against the new golden set: the next one must
            # convert again (and compare), so nothing is cached.
            cache_file.unlink(missing_ok=True)
        else:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(cache_file, {"key": key, "manifest_sha256": manifest_sha,
                                           "golden": info["golden"]})
        return manifest

    def _cases(self, m: ModelCase, manifest: dict[str, Any], golden: Any, info: dict[str, Any],
               tools: dict[str, str], t0: float) -> list[Case]:
        """Every case of one model (the golden reference first, when there is one)."""
        cases = []
        if golden is not None and not self.update_golden and manifest.get("golden_reference") is not None:
            cases.append(_reference_case(m, manifest, golden.meta, tools))
        for art in manifest["artifacts"]:
            for dev in m.devices:
                cases.append(judge(m, art, dev, manifest, self.baseline, self.cfg))
        info["elapsed_s"] = round(time.perf_counter() - t0, 3)
        info["manifest"] = os.path.relpath(self.out / "models" / m.name / "manifest.json", self.out)
        info["reference_latency_ms"] = median_ms(manifest.get("reference_latency"))
        info["evaluation"] = manifest.get("evaluation")
        for c in cases:
            c["cached"] = info["cached"]
            c["time_s"] = round(info["elapsed_s"] / max(1, len(cases)), 3)
        counts = _counts(cases)
        self.say("  " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
        return cases

    def _cached(self, cache_file: Path, key: str, mout: Path) -> dict[str, Any] | None:
        """The previous manifest when the key matches and every artifact is intact."""
        from edgekit.verify import verify

        try:
            c = json.loads(cache_file.read_text())
            if c.get("key") != key:
                return None
            sha, manifest = _read_manifest(mout)
            if sha != c.get("manifest_sha256") or not verify(str(mout))["ok"]:
                return None
            return manifest
        except (OSError, ValueError, errors.EdgekitError):
            return None

    def _model_error(self, m: ModelCase, info: dict[str, Any], exc: errors.EdgekitError,
                     t0: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A model that could not be loaded or run at all: one error case, the run goes on."""
        msg = " ".join(str(exc).split())
        self.say(f"  error: {msg}")
        info["error"] = msg
        info["elapsed_s"] = round(time.perf_counter() - t0, 3)
        code = exc.exit_code
        return info, [{"id": f"{m.name}/model@{m.devices[0]}", "model": m.name, "artifact": "model",
                       "format": None, "device": m.devices[0], "status": CaseStatus.ERROR,
                       "kind": "input" if code == errors.EXIT_USAGE else "conversion",
                       "messages": [msg], "notes": [], "hist": {}, "cached": False, "time_s": info["elapsed_s"],
                       "exit_code": code}]


def _read_manifest(out: Path) -> tuple[str, dict[str, Any]]:
    """(sha256 of its bytes, its content): one read of a model's manifest.json."""
    data = (out / "manifest.json").read_bytes()
    return hashlib.sha256(data).hexdigest(), json.loads(data)


def _counts(cases: list[Case]) -> dict[str, int]:
    """How many cases have each status, in the order of ``CaseStatus``."""
    return {str(s): sum(c["status"] == s for c in cases) for s in CaseStatus}


def case_exit(c: dict[str, Any]) -> int:
    if c["status"] == CaseStatus.ERROR:
        return c.get("exit_code", errors.EXIT_FAILED)
    if c["status"] == CaseStatus.FAIL:
        return errors.EXIT_TOLERANCE
    return errors.EXIT_OK


def finish(report: dict[str, Any]) -> None:
    """Totals and the exit code: 2 if a model's input was unusable, else 1 if anything failed to
    convert or run, else 3 if any tolerance, budget, golden or regression check failed, else 0."""
    cases = report["cases"]
    report["totals"] = _counts(cases)
    report["totals"]["cases"] = len(cases)
    codes = {case_exit(c) for c in cases}
    for code in (errors.EXIT_USAGE, errors.EXIT_FAILED, errors.EXIT_TOLERANCE):
        if code in codes:
            report["exit_code"] = code
            break
    else:
        report["exit_code"] = errors.EXIT_OK
    missing = report.get("missing_models")
    if missing:
        report["exit_code"] = errors.EXIT_FAILED if report["exit_code"] in (0, 3) else report["exit_code"]


def load_baseline(path: str) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(Path(path).read_text())
        return {c["id"]: c for c in data["cases"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise errors.InputError(f"--baseline {path}: not an edgekit check report.json ({exc})") from None


def _report_shape_error(r: Any) -> str | None:
    """What makes ``r`` unusable as a report (the keys and types merging reads), else None."""
    if not isinstance(r, dict):
        return f"a JSON {type(r).__name__}, expected an object"
    if r.get("report_version") != REPORT_VERSION:
        return f"report_version {r.get('report_version')!r}"
    if not isinstance(r.get("config_fingerprint"), str):
        return "config_fingerprint is not a string"
    if not (isinstance(r.get("all_models"), list) and all(isinstance(m, str) for m in r["all_models"])):
        return "all_models is not a list of names"
    if not (isinstance(r.get("models"), list) and all(isinstance(m, dict) and isinstance(m.get("name"), str)
                                                      for m in r["models"])):
        return "models is not a list of objects with a name"
    if not (isinstance(r.get("cases"), list) and all(isinstance(c, dict) and isinstance(c.get("status"), str)
                                                     and isinstance(c.get("model"), str) for c in r["cases"])):
        return "cases is not a list of objects with a model and a status"
    if "config" not in r or not isinstance(r.get("tools"), dict):
        return "no config or tools"
    if not isinstance(r.get("elapsed_s", 0.0), (int, float)):
        return "elapsed_s is not a number"
    return None


def _load_reports(paths: list[str]) -> list[dict[str, Any]]:
    """Each shard's report.json, read and checked for the shape merging relies on."""
    from edgekit.safeparse import load_json, read_text

    reports = []
    for p in paths:
        try:
            r = load_json(read_text(p, "report"), p)
        except errors.InputError as exc:
            raise errors.InputError(f"{p}: not an edgekit check report.json ({exc})") from None
        why = _report_shape_error(r)
        if why:
            raise errors.InputError(f"{p}: not an edgekit check report.json ({why})")
        reports.append(r)
    if not reports:
        raise errors.InputError("nothing to merge: pass the report.json of each shard")
    if len({r["config_fingerprint"] for r in reports}) > 1:
        raise errors.InputError("these reports come from different configurations (their model lists differ)")
    return reports


def _models_and_cases(paths: list[str], reports: list[dict[str, Any]]) -> tuple[list, list, list[str]]:
    """The shards' models and cases in the configuration's order, and the models none covered.
    A model in two shards is refused."""
    seen: dict[str, str] = {}
    models, cases = [], []
    for p, r in zip(paths, reports):
        for mi in r["models"]:
            if mi["name"] in seen:
                raise errors.InputError(f"model {mi['name']} is in both {seen[mi['name']]} and {p}: the same shard twice?")
            seen[mi["name"]] = p
            models.append(mi)
        cases.extend(r["cases"])
    all_models = reports[0]["all_models"]
    order = {n: i for i, n in enumerate(all_models)}
    models.sort(key=lambda mi: order.get(mi["name"], 0))
    cases.sort(key=lambda c: order.get(c["model"], 0))
    return models, cases, sorted(set(all_models) - set(seen))


def merge_reports(paths: list[str]) -> dict[str, Any]:
    """Join the JSON reports of the shards of one run into one report and one exit code.
    Shards of different configurations, or the same shard twice, are refused; models no shard
    covered make the merged run fail."""
    reports = _load_reports(paths)
    models, cases, missing = _models_and_cases(paths, reports)
    merged = {
        **{k: reports[0][k] for k in ("report_version", "config", "config_fingerprint", "all_models", "tools")},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "shard": None,
        "merged_from": [{"path": p, "shard": r.get("shard")} for p, r in zip(paths, reports)],
        "missing_models": missing,
        "models": models,
        "cases": cases,
        "baseline": any(r.get("baseline") for r in reports),
        "elapsed_s": round(sum(r.get("elapsed_s", 0.0) for r in reports), 3),
    }
    finish(merged)
    return merged
