"""``edgekit.toml`` (or ``[tool.edgekit]`` in pyproject.toml): what ``edgekit check`` runs.

Every key is validated before anything runs. An unknown key, a wrong type or an impossible
combination is a ``ConfigError`` naming the file, the line and the key's path, e.g.
``edgekit.toml:14: models.mlp.budgets.max_sise: unknown key (did you mean max_size?)``.
Paths in the file are relative to the file's directory.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgekit import errors
from edgekit.options import CONFIG, ConvertOptions

DEFAULT_OUT = "edgekit-check"
DEFAULT_GOLDEN_DIR = "golden"
HOST = "x86-cpu"


def known_devices() -> list[str]:
    """Built-in and user device profiles (``EDGEKIT_DEVICE_PROFILES``)."""
    from edgekit.devices import load_profiles

    return list(load_profiles())
SPECIAL_DATA = ("digits", "random")


class ConfigError(errors.InputError):
    """The configuration cannot be used as written (exit code 2)."""


# ---------------------------------------------------------------------------------------------
# value checkers: each returns the normalised value or raises ValueError with the reason

def _str(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"expected a non-empty string, got {v!r}")
    if "\0" in v:  # never part of a name or a path
        raise ValueError("expected a string without NUL characters")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {v!r}")
    return v


def _int(lo: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"expected an integer >= {lo}, got {v!r}")
        return v
    return check


def _num(lo: float = 0.0, hi: float | None = None, strict: bool = False) -> Callable[[Any], float]:
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
            raise ValueError(f"expected a finite number, got {v!r}")
        if (v <= lo if strict else v < lo) or (hi is not None and v > hi):
            rng = f"{'>' if strict else '>='} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")
            raise ValueError(f"expected a number {rng}, got {v!r}")
        return float(v)
    return check


def _list_of(item: Callable[[Any], Any]) -> Callable[[Any], list[Any]]:
    def check(v: Any) -> list[Any]:
        if isinstance(v, str):
            v = [s.strip() for s in v.split(",") if s.strip()]
        if not isinstance(v, list):
            raise ValueError(f"expected a list, got {v!r}")
        return [item(x) for x in v]
    return check


_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]i?[bB]|[bB])?\s*$")
_UNITS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3, "gib": 1024**3}


def parse_size(v: Any) -> int:
    """Bytes from ``123456``, ``"40 KB"``, ``"1.5 MiB"`` (KB = 1000 bytes, KiB = 1024)."""
    if isinstance(v, bool):
        raise ValueError(f"expected a size, got {v!r}")
    if isinstance(v, (int, float)):
        if v <= 0:
            raise ValueError(f"expected a size > 0, got {v!r}")
        return int(v)
    m = _SIZE_RE.match(str(v))
    if not m:
        raise ValueError(f"expected a size such as 40000, \"40 KB\" or \"1.5 MiB\", got {v!r}")
    return int(float(m[1]) * _UNITS[(m[2] or "b").lower()])


def parse_fraction(v: Any) -> float:
    """``0.05`` or ``"5%"`` -> 0.05."""
    if isinstance(v, str) and v.strip().endswith("%"):
        try:
            return float(v.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"expected a percentage such as \"5%\", got {v!r}") from None
    return _num(0.0)(v)


# ---------------------------------------------------------------------------------------------
# the schema

_TOLERANCE_KEYS: dict[str, Callable[[Any], Any]] = {"atol": _num(0.0), "rtol": _num(0.0)}
_BUDGET_KEYS = ("max_size", "max_latency_ms", "max_accuracy_drop", "min_agreement", "min_snr_db")
_MODEL_KEYS = (
    "model", "formats", "quantize", "onnx_quantize", "io_dtype", "calibration", "calibration_samples",
    "calibration_method", "eval_data", "inputs", "batch_size", "seed", "shapes", "opset", "devices",
    "custom_objects", "unsafe", "timeout", "repeats", "target_runtime", "tolerance", "budgets",
    "quantize_recipe", "quantize_engine", "kernels", "task", "max_cache_length", "generative", "tokenizer",
)
_RUN_KEYS = ("out", "golden_dir", "regression")
_REGRESSION_KEYS = ("max_size_increase", "max_latency_increase")


@dataclass
class Budgets:
    """Limits a case must stay within. Sizes and latencies are per artifact label
    (``tflite:int8``), per format (``tflite``) or ``default``."""

    max_size: dict[str, int] = field(default_factory=dict)
    max_latency_ms: dict[str, float] = field(default_factory=dict)
    max_accuracy_drop: float | None = None
    min_agreement: float | None = None
    min_snr_db: float | None = None

    @staticmethod
    def pick(table: dict[str, Any], label: str) -> Any:
        fam = label.split(":", 1)[0]
        for k in (label, fam, "default"):
            if k in table:
                return table[k]
        return None

    def to_json(self) -> dict[str, Any]:
        return {"max_size": self.max_size, "max_latency_ms": self.max_latency_ms,
                "max_accuracy_drop": self.max_accuracy_drop, "min_agreement": self.min_agreement,
                "min_snr_db": self.min_snr_db}


@dataclass
class ModelCase:
    """One ``[models.NAME]`` table, defaults from ``[check]`` applied, paths resolved: the
    model, the run's settings as ``edgekit convert`` takes them, and the budgets."""

    name: str
    model: str
    options: ConvertOptions = field(default_factory=ConvertOptions)
    budgets: Budgets = field(default_factory=Budgets)

    @property
    def devices(self) -> list[str]:
        return list(self.options.devices or (HOST,))

    @property
    def inputs(self) -> str | None:
        return self.options.inputs

    def conversion_json(self) -> dict[str, Any]:
        """Everything that decides the artifacts and their comparison (not the budgets,
        which are judged afresh on cached numbers)."""
        return {"model": self.model, **self.options.to_json()}

    def labels(self) -> list[str]:
        """The artifact labels this case produces (``tflite``, ``tflite:int8``, ...)."""
        return self.options.labels()


@dataclass
class CheckConfig:
    path: Path
    root: Path
    out: Path
    golden_dir: Path
    models: list[ModelCase]
    max_size_increase: float = 0.05
    max_latency_increase: float = 0.5

    def fingerprint(self) -> str:
        """Identifies the set of cases (for joining shards of one run)."""
        names = json.dumps(sorted(m.name for m in self.models))
        return hashlib.sha256(names.encode()).hexdigest()[:16]


class _Loc:
    """Finds the line of a key path in the TOML text (tomllib keeps no positions)."""

    _HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"^\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_\-.\" ]+?)\s*=")

    def __init__(self, text: str, prefix: tuple[str, ...]) -> None:
        self.prefix = prefix
        self.entries: list[tuple[tuple[str, ...], int]] = []
        table: tuple[str, ...] = ()
        for i, line in enumerate(text.splitlines(), 1):
            m = self._HEADER.match(line)
            if m:
                table = self._split(m[1])
                self.entries.append((table, i))
                continue
            m = self._KEY.match(line)
            if m:
                self.entries.append((table + self._split(m[1]), i))

    @staticmethod
    def _split(dotted: str) -> tuple[str, ...]:
        parts = re.findall(r"\"([^\"]*)\"|'([^']*)'|([^.\s]+)", dotted)
        return tuple(a or b or c for a, b, c in parts)

    def line(self, path: tuple[str, ...]) -> int | None:
        full = self.prefix + path
        for n in range(len(full), 0, -1):  # the key itself, else its nearest enclosing table
            for p, i in self.entries:
                if p == full[:n]:
                    return i
        return None


class _Validator:
    def __init__(self, path: Path, text: str, prefix: tuple[str, ...]) -> None:
        self.path, self.loc = path, _Loc(text, prefix)
        self.root = path.parent
        self.allow_unsafe = False

    def fail(self, keypath: tuple[str, ...], msg: str) -> None:
        line = self.loc.line(keypath)
        where = f"{self.path.name}:{line}" if line else self.path.name
        dotted = ".".join(keypath) if keypath else "(top level)"
        raise ConfigError(f"{where}: {dotted}: {msg}")

    def table(self, v: Any, keypath: tuple[str, ...], allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(v, dict):
            self.fail(keypath, f"expected a table, got {v!r}")
        for k in v:
            if k not in allowed:
                near = difflib.get_close_matches(k, allowed, n=1)
                hint = f" (did you mean {near[0]}?)" if near else f"; known keys: {', '.join(allowed)}"
                self.fail(keypath + (k,), "unknown key" + hint)
        return v

    def value(self, v: Any, keypath: tuple[str, ...], check: Callable[[Any], Any]) -> Any:
        try:
            return check(v)
        except ValueError as exc:
            self.fail(keypath, str(exc))

    def path_value(self, v: Any, keypath: tuple[str, ...], special: tuple[str, ...] = ()) -> str:
        s = self.value(v, keypath, _str)
        if s in special:
            return s
        try:
            p = (self.root / s).resolve()
            found = p.exists()
        except (OSError, ValueError) as exc:  # a name too long, a NUL byte
            self.fail(keypath, f"{s[:80]!r} is not a usable path ({type(exc).__name__})")
        if not found:
            self.fail(keypath, f"{s} does not exist (relative to {self.root})")
        return str(p)

    def code_path(self, v: Any, keypath: tuple[str, ...]) -> str:
        """A Python module the run imports: only inside the configuration's directory tree
        (symlinks resolved), so a configuration cannot run code from elsewhere on the machine."""
        p = Path(self.path_value(v, keypath))
        if not p.is_relative_to(self.root):
            self.fail(keypath, f"{p} is outside {self.root}: edgekit imports Python modules only from the "
                               "configuration's directory tree")
        return str(p)

    def gate_unsafe(self, keypath: tuple[str, ...], what: str) -> None:
        if not self.allow_unsafe:
            self.fail(keypath, f"{what} runs code from the model or a module, and takes effect only with "
                               "'edgekit check --unsafe' (or EDGEKIT_ALLOW_UNSAFE=1): a configuration file alone "
                               "never turns safe loading off")


ALLOW_UNSAFE_ENV = "EDGEKIT_ALLOW_UNSAFE"


def search_dirs(start: Path) -> list[Path]:
    """Where a configuration is looked for: ``start`` and its parents up to the repository root
    (the first directory holding ``.git``) or the home directory, as pytest and ruff do. Outside
    both, only ``start``: a file in a shared parent such as /tmp must not configure a run."""
    start = start.resolve()
    home = Path.home().resolve()
    dirs = []
    for d in [start, *start.parents]:
        dirs.append(d)
        if (d / ".git").exists() or d == home:
            return dirs
    return [start]


def find_config(start: Path) -> Path:
    """``edgekit.toml`` in ``start`` or a parent (see ``search_dirs``), else a pyproject.toml
    with [tool.edgekit]."""
    dirs = search_dirs(start)
    for d in dirs:
        if (d / "edgekit.toml").is_file():
            return d / "edgekit.toml"
        pp = d / "pyproject.toml"
        if pp.is_file() and re.search(r"^\s*\[tool\.edgekit", pp.read_text(errors="replace"), re.M):
            return pp
    raise ConfigError(f"no edgekit.toml (or pyproject.toml with [tool.edgekit]) in {start} or its parents "
                      f"up to {dirs[-1]} (the search stops at the repository root or the home directory)")


def unsafe_allowed(flag: bool = False) -> bool:
    """``--unsafe`` on the command line, or EDGEKIT_ALLOW_UNSAFE=1: what lets a configuration's
    ``unsafe`` and ``custom_objects`` take effect (a file alone never turns safe loading off)."""
    return flag or os.environ.get(ALLOW_UNSAFE_ENV, "") == "1"


def config_path(path: str | Path | None = None) -> Path:
    """The configuration file a run uses: ``path``, or the one found from a directory up."""
    p = Path(path) if path else find_config(Path.cwd())
    if p.is_dir():
        p = find_config(p)
    if not p.exists():
        raise ConfigError(f"configuration {p} does not exist")
    return p.resolve()


def load_config(path: str | Path | None = None, allow_unsafe: bool | None = None) -> CheckConfig:
    """Read and validate a configuration; raise ``ConfigError`` naming line and key path.

    ``unsafe = true`` and ``custom_objects`` are refused unless ``allow_unsafe`` (default:
    EDGEKIT_ALLOW_UNSAFE=1)."""
    from edgekit.safeparse import load_toml, read_text

    p = config_path(path)
    text = read_text(p, "configuration")
    data = load_toml(text, p.name, ConfigError)
    prefix: tuple[str, ...] = ()
    if p.name == "pyproject.toml":
        data = data.get("tool", {}).get("edgekit")
        prefix = ("tool", "edgekit")
        if data is None:
            raise ConfigError(f"{p.name}: no [tool.edgekit] table")
    v = _Validator(p.resolve(), text, prefix)
    v.allow_unsafe = unsafe_allowed() if allow_unsafe is None else allow_unsafe
    v.table(data, (), ("check", "models"))
    run = v.table(data.get("check", {}), ("check",), _RUN_KEYS + _MODEL_KEYS)
    models = data.get("models")
    if not models:
        v.fail(("models",), "no models: add a [models.NAME] table with model = \"path/to/model.keras\"")
    v.table(models, ("models",), tuple(models) if isinstance(models, dict) else ())
    defaults = {k: val for k, val in run.items() if k not in _RUN_KEYS}
    if "model" in defaults:
        v.fail(("check", "model"), "model belongs in a [models.NAME] table")
    cases = []
    devices_known = known_devices()  # profile files read once per configuration
    for name, raw in models.items():
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
            v.fail(("models", name), "model names may use letters, digits, '_', '-' and '.' only")
        v.table(raw, ("models", name), _MODEL_KEYS)
        merged = {**defaults, **raw}
        for sub in ("tolerance", "budgets"):  # tables merge key by key
            if isinstance(defaults.get(sub), dict) and isinstance(raw.get(sub), dict):
                merged[sub] = {**defaults[sub], **raw[sub]}
        cases.append(_model_case(v, name, merged, set(raw), devices_known))
    reg = v.table(run.get("regression", {}), ("check", "regression"), _REGRESSION_KEYS)
    out = run.get("out", DEFAULT_OUT)
    golden = run.get("golden_dir", DEFAULT_GOLDEN_DIR)
    return CheckConfig(
        path=p.resolve(), root=p.resolve().parent,
        out=(p.parent / v.value(out, ("check", "out"), _str)).resolve(),
        golden_dir=(p.parent / v.value(golden, ("check", "golden_dir"), _str)).resolve(),
        models=cases,
        max_size_increase=v.value(reg.get("max_size_increase", 0.05), ("check", "regression", "max_size_increase"),
                                  parse_fraction),
        max_latency_increase=v.value(reg.get("max_latency_increase", 0.5),
                                     ("check", "regression", "max_latency_increase"), parse_fraction),
    )


def _model_case(v: _Validator, name: str, d: dict[str, Any], own: set[str], known: list[str]) -> ModelCase:
    def kp(*keys: str) -> tuple[str, ...]:
        # a key set in [check] is reported there, one set in the model's table there
        return (("models", name) if keys[0] in own else ("check",)) + keys

    if "model" not in d:
        v.fail(("models", name), "missing key 'model' (a .keras/.h5 file, a SavedModel directory, "
                                 "module.py:function or builtin:NAME)")
    settings = {**_lists(v, d, kp, known), **_scalars(v, d, kp)}
    settings.update(_tolerances(v, d, kp) if "tolerance" in d else {})
    case = ModelCase(name, _model_ref(v, d["model"], kp("model")), ConvertOptions.of(**settings))
    if "budgets" in d:
        case.budgets = _budgets(v, d["budgets"], kp("budgets"), case)
        case.options = case.options.replace(max_accuracy_drop=case.budgets.max_accuracy_drop)
    # combinations that cannot work: the rules every surface shares (edgekit/options.py)
    where = {"": ("models", name), "max_accuracy_drop": kp("budgets", "max_accuracy_drop")}
    for key, msg in case.options.problems(CONFIG):
        v.fail(where.get(key) or kp(key), msg)
    return case


def _model_ref(v: _Validator, raw: Any, keypath: tuple[str, ...]) -> str:
    """``builtin:NAME`` as is; a builder module or a model file resolved (it must exist)."""
    model = v.value(raw, keypath, _str)
    if model.startswith("builtin:"):
        return model
    m = re.match(r"^(?P<file>.+\.py):(?P<func>[A-Za-z_][A-Za-z0-9_]*)$", model)
    if m:
        return v.code_path(m["file"], keypath) + ":" + m["func"]
    return v.path_value(model, keypath)


def _lists(v: _Validator, d: dict[str, Any], kp: Callable[..., tuple[str, ...]], known: list[str]) -> dict[str, Any]:
    """formats, quantize, onnx_quantize and devices, each entry checked against what exists."""
    from edgekit.converters import FORMATS
    from edgekit.quantize.recipes import ONNX_MODES, TFLITE_MODES

    choices = {"formats": (list(FORMATS), "format", ""), "quantize": (list(TFLITE_MODES) + ["auto"], "TFLite mode", ""),
               "onnx_quantize": (list(ONNX_MODES), "ONNX mode", ""),
               "devices": (known, "device", " (see 'edgekit devices')"),
               "kernels": (["xnnpack", "reference"], "kernel path", "")}
    defaults = {"formats": list(FORMATS), "quantize": [], "onnx_quantize": [], "devices": [HOST], "kernels": []}
    out = {}
    for key, (allowed, what, hint) in choices.items():
        out[key] = v.value(d.get(key, defaults[key]), kp(key), _list_of(_str))
        for x in out[key]:
            base = x.partition(":")[0] if key in ("quantize", "onnx_quantize") else x  # int4:128
            if base not in allowed:
                sep = "known" if key == "devices" else "choose from"
                v.fail(kp(key), f"unknown {what} {x!r}; {sep}: {', '.join(allowed)}{hint}")
    out["devices"] = [HOST] + [dev for dev in dict.fromkeys(out["devices"]) if dev != HOST]  # the host is always checked
    return out


def _scalars(v: _Validator, d: dict[str, Any], kp: Callable[..., tuple[str, ...]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "io_dtype" in d:
        out["io_dtype"] = v.value(d["io_dtype"], kp("io_dtype"), _str)
        if out["io_dtype"] not in ("float32", "int8", "uint8"):
            v.fail(kp("io_dtype"), f"expected float32, int8 or uint8, got {out['io_dtype']!r}")
    for key, special in (("calibration", SPECIAL_DATA), ("eval_data", ("digits",)), ("inputs", ())):
        if key in d:
            out[key] = v.path_value(d[key], kp(key), special)
    if "quantize_recipe" in d:  # a TOML file, or the same table inline
        raw = d["quantize_recipe"]
        if isinstance(raw, dict):
            from edgekit.quantize.recipes import layer_recipe

            try:
                layer_recipe(raw, "quantize_recipe")
            except errors.InputError as exc:
                v.fail(kp("quantize_recipe"), str(exc).removeprefix("quantize_recipe: "))
            out["quantize_recipe"] = raw
        else:
            out["quantize_recipe"] = v.path_value(raw, kp("quantize_recipe"), ())
    if "tokenizer" in d:
        out["tokenizer"] = v.path_value(d["tokenizer"], kp("tokenizer"), ())
    if "quantize_engine" in d:
        out["quantize_engine"] = v.value(d["quantize_engine"], kp("quantize_engine"), _str)
    if "custom_objects" in d:
        v.gate_unsafe(kp("custom_objects"), "custom_objects")
        out["custom_objects"] = v.code_path(d["custom_objects"], kp("custom_objects"))
    for key, check in (("calibration_samples", _int(1)), ("batch_size", _int(1)), ("seed", _int(0)),
                       ("opset", _int(7)), ("unsafe", _bool), ("timeout", _num(0.0, strict=True)),
                       ("repeats", _int(0)), ("target_runtime", _str), ("calibration_method", _str),
                       ("task", _str), ("max_cache_length", _int(2)), ("generative", _bool)):
        if key in d:
            out[key] = v.value(d[key], kp(key), check)
    if out.get("unsafe"):
        v.gate_unsafe(kp("unsafe"), "unsafe = true")
    if "shapes" in d:
        shapes = v.table(d["shapes"], kp("shapes"), tuple(d["shapes"]) if isinstance(d["shapes"], dict) else ())
        out["shapes"] = {k: v.value(s, kp("shapes", k), _list_of(_int(1))) for k, s in shapes.items()}
    return out


def _tolerances(v: _Validator, d: dict[str, Any], kp: Callable[..., tuple[str, ...]]) -> dict[str, Any]:
    """``[tolerance]`` with atol/rtol for every output and ``[tolerance.outputs.NAME]`` per output."""
    found: dict[str, dict[str | None, float]] = {"atol": {}, "rtol": {}}
    tol = v.table(d["tolerance"], kp("tolerance"), ("atol", "rtol", "outputs"))
    for k in ("atol", "rtol"):
        if k in tol:
            found[k][None] = v.value(tol[k], kp("tolerance", k), _TOLERANCE_KEYS[k])
    outs = tol.get("outputs", {})
    v.table(outs, kp("tolerance", "outputs"), tuple(outs) if isinstance(outs, dict) else ())
    for oname, o in outs.items():
        v.table(o, kp("tolerance", "outputs", oname), ("atol", "rtol"))
        for k in ("atol", "rtol"):
            if k in o:
                found[k][oname] = v.value(o[k], kp("tolerance", "outputs", oname, k), _TOLERANCE_KEYS[k])
    return found


def _budgets(v: _Validator, raw: Any, kp: tuple[str, ...], case: ModelCase) -> Budgets:
    t = v.table(raw, kp, _BUDGET_KEYS)
    b = Budgets()
    labels = case.labels()
    families = sorted({lab.split(":")[0] for lab in labels})
    for key, check in (("max_size", parse_size), ("max_latency_ms", _num(0.0, strict=True))):
        if key not in t:
            continue
        val = t[key]
        if isinstance(val, dict):
            for lab, x in val.items():
                if lab != "default" and lab not in labels and lab not in families:
                    v.fail(kp + (key, lab), f"no artifact {lab!r} in this model; it produces: {', '.join(labels)}")
                getattr(b, key)[lab] = v.value(x, kp + (key, lab), check)
        else:
            getattr(b, key)["default"] = v.value(val, kp + (key,), check)
    if "max_accuracy_drop" in t:
        b.max_accuracy_drop = v.value(t["max_accuracy_drop"], kp + ("max_accuracy_drop",), _num(0.0, 100.0))
    if "min_agreement" in t:
        b.min_agreement = v.value(t["min_agreement"], kp + ("min_agreement",), _num(0.0, 1.0))
    if "min_snr_db" in t:
        b.min_snr_db = v.value(t["min_snr_db"], kp + ("min_snr_db",), _num(-1e9))
    return b
