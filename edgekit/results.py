"""What a run produced: the jobs, one result row per artifact, the run's result."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from edgekit import errors
from edgekit.converters import FORMATS
from edgekit.models.source import ModelSource
from edgekit.quantize.recipes import Recipe
from edgekit.specs import ModelSpec
from edgekit.validate import Comparison, Tolerance

class Status(StrEnum):
    """The one vocabulary of outcomes, for rows (artifact on the host) and cells (artifact on
    a device) alike. A ``StrEnum``: members compare and serialize as their values, which
    are what manifests and reports have always stored."""

    PASS = "pass"
    MISMATCH = "mismatch"  # ran, but outside its tolerance
    ERROR = "error"  # did not convert or did not run
    SKIPPED = "skipped"  # not applicable to this model (printed n/a) or not needed (auto)
    REJECTED = "rejected"  # --quantize auto: a mode that failed and was not kept
    UNAVAILABLE = "unavailable"  # a device cell whose device could not be reached
    NOT_APPLICABLE = "n/a"  # a device cell whose device does not run the artifact's runtime

    @property
    def label(self) -> str:
        """How the matrix prints it."""
        return _LABELS[self]

    @property
    def failed(self) -> bool:
        """Counts as a failure of the run (exit 1)."""
        return self in (Status.ERROR, Status.UNAVAILABLE)


_LABELS = {Status.PASS: "PASS", Status.MISMATCH: "FAIL", Status.ERROR: "ERROR", Status.SKIPPED: "n/a",
           Status.REJECTED: "REJECTED", Status.UNAVAILABLE: "UNAVAILABLE", Status.NOT_APPLICABLE: "n/a"}


class CaseStatus(StrEnum):
    """The outcome of one ``edgekit check`` case (model x artifact x device), as its reports
    store it. Coarser than ``Status``, and judged from it: a row's or cell's ``mismatch`` and
    any budget, golden or regression breach are all one ``fail`` (exit code 3); ``error`` and
    ``unavailable`` are an ``error`` (exit 1); ``skipped``, ``rejected`` and ``n/a`` are
    ``skipped``. A separate enum rather than more ``Status`` members because ``fail`` is a
    verdict over several checks, which no row or cell ever holds; the shared values
    (``pass``, ``error``, ``skipped``) are the same strings, so each compares equal to its
    ``Status`` namesake."""

    PASS = "pass"
    FAIL = "fail"  # a tolerance, budget, golden or regression breach
    ERROR = "error"  # the artifact could not be produced or run
    SKIPPED = "skipped"  # not applicable, not run on this device, or not kept

    @property
    def label(self) -> str:
        """How the check reports print it."""
        return _CASE_LABELS[self]


_CASE_LABELS = {CaseStatus.PASS: "PASS", CaseStatus.FAIL: "FAIL", CaseStatus.ERROR: "ERROR",
                CaseStatus.SKIPPED: "skip"}

PASS, MISMATCH, ERROR, SKIPPED, REJECTED = Status.PASS, Status.MISMATCH, Status.ERROR, Status.SKIPPED, Status.REJECTED
UNAVAILABLE, NOT_APPLICABLE = Status.UNAVAILABLE, Status.NOT_APPLICABLE
# Check inputs taken from --eval-data or --calibration data when no --inputs are given.
CHECK_SAMPLES = 64


@dataclass(frozen=True)
class Job:
    """One artifact to produce: a registered format, optionally quantized by a recipe."""

    format: str
    filename: str
    runtime: str
    policy: str
    recipe: Recipe | None = None
    kind: str = ""  # "generate": a decoder with a KV cache (edgekit.generation)

    @property
    def label(self) -> str:
        return artifact_label(self.format, self.kind, self.recipe)


def artifact_label(fmt: str, kind: str, recipe: Recipe | None) -> str:
    """``tflite``, ``tflite:int8``, ``tflite:generate``, ``tflite:generate:int4``."""
    return ":".join([fmt, *([kind] if kind else []), *([recipe.mode] if recipe is not None else [])])


def build_jobs(fmts: list[str], recipes: list[Recipe]) -> list[Job]:
    jobs = [Job(f, FORMATS[f].filename, FORMATS[f].runtime, FORMATS[f].policy) for f in fmts]
    for r in recipes:
        jobs.append(Job(r.family, r.filename, FORMATS[r.family].runtime, r.policy, r))
    return jobs


@dataclass
class Cell:
    """One artifact on one device other than the host: its outcome against the model's
    reference and against the host's own outputs."""

    status: Status = Status.NOT_APPLICABLE
    emulated: bool = False
    latency: dict[str, float] | None = None
    comparison: Comparison | None = None
    vs_host: dict[str, Any] | None = None  # max_abs, bit_exact, within_tolerance
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = {"status": str(self.status), "emulated": self.emulated, "latency": self.latency,
               "comparison": None if self.comparison is None else self.comparison.to_json(),
               "vs_host": self.vs_host, "error": self.error}
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Cell":
        comp = d.get("comparison")
        return cls(Status(d["status"]), bool(d.get("emulated")), d.get("latency"),
                   None if comp is None else Comparison.from_json(comp), d.get("vs_host"), d.get("error"),
                   list(d.get("notes") or []))


@dataclass
class ArtifactResult:
    """One row of the matrix."""

    format: str
    filename: str = ""
    recipe: Recipe | None = None
    path: str | None = None
    status: Status = Status.ERROR
    size: int | None = None
    sha256: str | None = None
    convert_s: float | None = None
    latency: dict[str, float] | None = None
    comparison: Comparison | None = None
    tolerances: dict[str, Tolerance] = field(default_factory=dict)
    runtime: str = ""
    stage: str = ""
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    task: dict[str, Any] | None = None  # metric on --eval-data and its drop from the float model
    golden: Comparison | None = None  # against stored golden outputs, when the run was given them
    devices: dict[str, Cell] = field(default_factory=dict)  # cells on devices other than the host
    kernels: dict[str, Cell] = field(default_factory=dict)  # the host's other CPU kernel sets (quantized rows)
    kind: str = ""  # "generate": a decoder with a KV cache, checked by generating (edgekit.generation)

    @property
    def label(self) -> str:
        return artifact_label(self.format, self.kind, self.recipe)

    def to_json(self, out_dir: Path) -> dict[str, Any]:
        return {
            "format": self.format,
            "label": self.label,
            "kind": self.kind or None,
            "recipe": self.recipe.to_json() if self.recipe else None,
            "task_metric": self.task,
            "path": os.path.relpath(self.path, out_dir) if self.path else None,
            "status": self.status,
            "size": self.size,
            "sha256": self.sha256,
            "convert_s": self.convert_s,
            "runtime": self.runtime,
            "latency": self.latency,
            "stage": self.stage or None,
            "error": self.error,
            "notes": self.notes,
            "meta": self.meta,
            "comparison": self.comparison.to_json() if self.comparison is not None else None,
            "golden": self.golden.to_json() if self.golden is not None else None,
            "devices": {name: cell.to_json() for name, cell in self.devices.items()},
            "kernels": {name: cell.to_json() for name, cell in self.kernels.items()},
        }


@dataclass
class ConvertResult:
    source: ModelSource
    spec: ModelSpec
    out_dir: Path
    rows: list[ArtifactResult]
    feeds_info: dict[str, Any]
    reference_latency: dict[str, float]
    manifest_path: Path
    elapsed_s: float

    calibration: dict[str, Any] | None = None
    eval_info: dict[str, Any] | None = None
    devices: list[dict[str, Any]] = field(default_factory=list)  # the profiles of the run, host first
    # In memory only (not in the manifest): the check inputs and the model's outputs on them.
    feeds: dict[str, Any] | None = None
    reference: dict[str, Any] | None = None
    golden_reference: Comparison | None = None  # the live model against golden outputs

    @property
    def exit_code(self) -> int:
        """1 if anything failed to convert or run, else 3 if any tolerance was exceeded
        (or ``--quantize auto`` found no mode that passes), else 0."""
        statuses = [r.status for r in self.rows] + [c.status for r in self.rows
                                                    for c in [*r.devices.values(), *r.kernels.values()]]
        if any(s.failed for s in statuses):
            return errors.EXIT_FAILED
        if Status.MISMATCH in statuses:
            return errors.EXIT_TOLERANCE
        rejected = [r for r in self.rows if r.status == REJECTED]
        if rejected and not any(r.recipe is not None and r.status == PASS for r in self.rows):
            return errors.EXIT_TOLERANCE
        return errors.EXIT_OK

    def float_size(self, family: str, kind: str = "") -> int | None:
        for r in self.rows:
            if r.format == family and r.recipe is None and r.kind == kind and r.size:
                return r.size
        return None
