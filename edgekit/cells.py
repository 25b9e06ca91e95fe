"""Cells: one artifact on one device other than the host, against the model's reference and
against the host's own outputs. The device workers start on the first cell that needs them."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekit import errors
from edgekit.quantize.recipes import Approach
from edgekit.results import ArtifactResult, Cell, Job, Status
from edgekit.tolerances import tolerances_for
from edgekit.validate import compare
from edgekit.validate.truth import judge


class DeviceCells:
    def __init__(self, profiles: list[Any], pool: Any) -> None:
        self.profiles = profiles  # host first
        self.pool = pool
        self.workers: Any = None

    def close(self) -> None:
        if self.workers is not None:
            self.workers.close()

    def profiles_json(self) -> list[dict[str, Any]]:
        """The run's devices as the manifest records them (with each self-test's outcome)."""
        return [{**p.to_json(), **({"self_test": self.workers.self_tests.get(p.name)} if self.workers is not None else {})}
                for p in self.profiles]

    def cells(self, ctx: Any, job: Job, row: ArtifactResult, prefix: str, staged: Path,
              host_out: dict[str, np.ndarray]) -> dict[str, Cell]:
        return {prof.name: self.cell(ctx, prof, job, row, prefix, staged, host_out) for prof in self.profiles[1:]}

    def cell(self, ctx: Any, prof: Any, job: Job, row: ArtifactResult, prefix: str, staged: Path,
             host_out: dict[str, np.ndarray]) -> Cell:
        cell = Cell(Status.NOT_APPLICABLE, prof.emulated)
        if not prof.runs(job.runtime):
            cell.error = f"{prof.name} does not run {job.runtime}"
            return cell
        if self.workers is None:
            from edgekit.devices.executor import DeviceWorkers

            self.workers = DeviceWorkers(self.profiles[1:], self.pool.rt, self.pool.tf)
        ctx.say(f"{prefix}: running on {prof.name}" + (" (emulated)" if prof.emulated else ""))
        try:
            res = self.workers.run(prof.name, job.runtime, str(staged), ctx.inputs.feeds, ctx.opts.repeats,
                                   ctx.opts.timeout, label=job.label)
        except errors.DeviceUnavailable as exc:
            cell.status, cell.error = Status.UNAVAILABLE, str(exc)
            ctx.say(f"{prefix}: {prof.name} unavailable: {exc}")
            return cell
        except errors.WriteFailure:
            raise
        except errors.EdgekitError as exc:
            cell.status, cell.error = Status.ERROR, str(exc).replace(str(staged.parent), str(ctx.out))
            ctx.say(f"{prefix}: {prof.name}: {cell.error}")
            return cell
        tols = tolerances_for(job.policy, ctx.spec, ctx.opts.atol, ctx.opts.rtol, device=prof)
        ref = ctx.ref
        cell.comparison = judge(compare(ref.outputs, res["outputs"], tols), ref.outputs, res["outputs"], ref.truth)
        cell.latency = res["latency"]
        cell.status = Status.PASS if cell.comparison else Status.MISMATCH
        if not cell.comparison:
            cell.error = "; ".join(cell.comparison.failures())
        cell.vs_host = _vs_host(host_out, res["outputs"], tols)
        d = cell.vs_host["max_abs"]
        if job.recipe is not None and job.recipe.approach in (Approach.INT8, Approach.INT16X8) and d not in (None, 0.0):
            # integer-only kernels: the same integers are expected
            cell.notes.append(f"{job.recipe.mode} LiteRT is not bit-exact with the host (max|d| {d:.3g})")
        ctx.say(f"{prefix}: {prof.name}: {cell.status}" + (f" ({cell.error})" if cell.error else ""))
        return cell


def kernel_cells(ctx: Any, job: Job, row: ArtifactResult, prefix: str, staged: Path,
                 host_out: dict[str, np.ndarray]) -> dict[str, Cell]:
    """The artifact on each other CPU kernel set of its runtime (LiteRT: the reference
    kernels beside XNNPACK, which the host row ran), judged by the artifact's own criteria.
    A path that fails is a failed cell naming the path; the row lists where it may be deployed."""
    from edgekit.runtimes import RUNTIMES, checked_kernel_paths

    paths = RUNTIMES[job.runtime].kernel_paths
    if not paths:  # a runtime with one kernel set: the host row is all there is
        return {}
    cells: dict[str, Cell] = {}
    tols = row.tolerances
    for k in checked_kernel_paths(job.runtime, ctx.opts.kernels):
        if k == paths[0]:  # the host row's own path
            continue
        cell = Cell(Status.NOT_APPLICABLE, False)
        ctx.say(f"{prefix}: running on the {k} kernels")
        try:
            res = ctx.pool.rt.call("edgekit.tasks:run_artifact", job.runtime, str(staged), ctx.inputs.feeds, 1,
                                   {"kernels": k}, timeout=ctx.opts.timeout, tag=f"run:{job.label}:{k}")
        except errors.WriteFailure:
            raise
        except errors.EdgekitError as exc:
            cell.status, cell.error = Status.ERROR, f"{k} kernels: {exc}"
            cells[k] = cell
            continue
        cell.comparison = compare(ctx.ref.outputs, res["outputs"], tols)
        cell.latency = res["latency"]
        cell.vs_host = _vs_host(host_out, res["outputs"], tols)
        cell.status = Status.PASS if cell.comparison else Status.MISMATCH
        if not cell.comparison:
            flat = all(float(np.max(np.abs(np.asarray(v, np.float64)))) == 0.0 for v in res["outputs"].values()
                       if np.asarray(v).size)
            cell.error = f"{k} kernels: " + ("every output is zero; " if flat else "") + "; ".join(cell.comparison.failures())
        cells[k] = cell
    ok = [paths[0]] + [k for k, c in cells.items() if c.status == Status.PASS]
    bad = [k for k, c in cells.items() if c.status != Status.PASS]
    if cells:
        row.notes.append(f"kernel paths: deploy on {', '.join(ok) if row.status != Status.MISMATCH else '(none)'}"
                         + (f"; fails on {', '.join(bad)}" if bad else ""))
    for c in cells.values():
        if c.error:
            ctx.say(f"{prefix}: {c.error}")
    return cells


def _vs_host(host_out: dict[str, np.ndarray], outs: dict[str, np.ndarray], tols: dict[str, Any]) -> dict[str, Any]:
    """The device against the host's own output: max|d|, bit-exactness, and for float
    artifacts whether the difference is within the artifact's tolerance."""
    diffs = [float(np.max(np.abs(np.asarray(host_out[k], np.float64) - np.asarray(v, np.float64))))
             if np.asarray(v).size else 0.0 for k, v in outs.items() if k in host_out]
    d = max(diffs) if diffs else None
    within = None
    if all(not t.quality for t in tols.values()):  # float artifacts: the host as the reference
        within = bool(compare({k: np.asarray(v) for k, v in host_out.items() if k in outs},
                              {k: v for k, v in outs.items() if k in host_out},
                              {k: tols[k] for k in host_out if k in outs}))
    return {"max_abs": d, "bit_exact": d == 0.0, "within_tolerance": within}
