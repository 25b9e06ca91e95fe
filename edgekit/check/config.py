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

CONFIG_NAMES = ("edgekit.toml", "pyproject.toml")
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
    """One ``[models.NAME]`` table, defaults from ``[check]`` applied, paths resolved."""

    name: str
    model: str
    formats: list[str]
    devices: list[str]
    quantize: list[str] = field(default_factory=list)
    onnx_quantize: list[str] = field(default_factory=list)
    io_dtype: str = "float32"
    calibration: str | None = None
    calibration_samples: int = 200
    calibration_method: str | None = None
    eval_data: str | None = None
    inputs: str | None = None
    batch_size: int = 2
    seed: int = 0
    shapes: dict[str, list[int]] = field(default_factory=dict)
    opset: int = 17
    custom_objects: str | None = None
    unsafe: bool = False
    timeout: float = 600.0
    repeats: int = 5
    target_runtime: str | None = None
    atol: dict[str | None, float] = field(default_factory=dict)
    rtol: dict[str | None, float] = field(default_factory=dict)
    budgets: Budgets = field(default_factory=Budgets)

    def conversion_json(self) -> dict[str, Any]:
        """Everything that decides the artifacts and their comparison (not the budgets,
        which are judged afresh on cached numbers)."""
        d = {k: v for k, v in self.__dict__.items() if k not in ("budgets", "name")}
        d["atol"] = {str(k): v for k, v in self.atol.items()}
        d["rtol"] = {str(k): v for k, v in self.rtol.items()}
        return d

    def labels(self) -> list[str]:
        """The artifact labels this case produces (``tflite``, ``tflite:int8``, ...)."""
        from edgekit.quantize.recipes import AUTO_ORDER

        q = list(AUTO_ORDER) if self.quantize == ["auto"] else self.quantize
        return self.formats + [f"tflite:{m}" for m in q] + [f"onnx:{m}" for m in self.onnx_quantize]


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
    from edgekit.converters import FORMATS
    from edgekit.quantize.recipes import ONNX_MODES, TFLITE_MODES

    def kp(*keys: str) -> tuple[str, ...]:
        # a key set in [check] is reported there, one set in the model's table there
        return (("models", name) if keys[0] in own else ("check",)) + keys

    if "model" not in d:
        v.fail(("models", name), "missing key 'model' (a .keras/.h5 file, a SavedModel directory, "
                                 "module.py:function or builtin:NAME)")
    model = v.value(d["model"], kp("model"), _str)
    if not model.startswith("builtin:"):
        m = re.match(r"^(?P<file>.+\.py):(?P<func>[A-Za-z_][A-Za-z0-9_]*)$", model)
        if m:
            model = v.code_path(m["file"], kp("model")) + ":" + m["func"]
        else:
            model = v.path_value(model, kp("model"))
    formats = v.value(d.get("formats", list(FORMATS)), kp("formats"), _list_of(_str))
    for f in formats:
        if f not in FORMATS:
            v.fail(kp("formats"), f"unknown format {f!r}; choose from: {', '.join(FORMATS)}")
    quant = v.value(d.get("quantize", []), kp("quantize"), _list_of(_str))
    for q in quant:
        if q not in TFLITE_MODES and q != "auto":
            v.fail(kp("quantize"), f"unknown TFLite mode {q!r}; choose from: {', '.join(TFLITE_MODES)}, auto")
    if "auto" in quant and quant != ["auto"]:
        v.fail(kp("quantize"), "auto picks among every mode: use it alone")
    oq = v.value(d.get("onnx_quantize", []), kp("onnx_quantize"), _list_of(_str))
    for q in oq:
        if q not in ONNX_MODES:
            v.fail(kp("onnx_quantize"), f"unknown ONNX mode {q!r}; choose from: {', '.join(ONNX_MODES)}")
    devices = v.value(d.get("devices", [HOST]), kp("devices"), _list_of(_str))
    for dev in devices:
        if dev not in known:
            v.fail(kp("devices"), f"unknown device {dev!r}; known: {', '.join(known)} (see 'edgekit devices')")
    devices = [HOST] + [dev for dev in dict.fromkeys(devices) if dev != HOST]  # the host is always checked
    case = ModelCase(name=name, model=model, formats=formats, devices=devices, quantize=quant, onnx_quantize=oq)
    case.io_dtype = v.value(d.get("io_dtype", "float32"), kp("io_dtype"), _str)
    if case.io_dtype not in ("float32", "int8", "uint8"):
        v.fail(kp("io_dtype"), f"expected float32, int8 or uint8, got {case.io_dtype!r}")
    for key, special in (("calibration", SPECIAL_DATA), ("eval_data", ("digits",)), ("inputs", ())):
        if key in d:
            setattr(case, key, v.path_value(d[key], kp(key), special))
    if "custom_objects" in d:
        v.gate_unsafe(kp("custom_objects"), "custom_objects")
        case.custom_objects = v.code_path(d["custom_objects"], kp("custom_objects"))
    for key, check in (("calibration_samples", _int(1)), ("batch_size", _int(1)), ("seed", _int(0)),
                       ("opset", _int(7)), ("unsafe", _bool), ("timeout", _num(0.0, strict=True)),
                       ("repeats", _int(0)), ("target_runtime", _str), ("calibration_method", _str)):
        if key in d:
            setattr(case, key, v.value(d[key], kp(key), check))
    if case.unsafe:
        v.gate_unsafe(kp("unsafe"), "unsafe = true")
    if "shapes" in d:
        shapes = v.table(d["shapes"], kp("shapes"), tuple(d["shapes"]) if isinstance(d["shapes"], dict) else ())
        case.shapes = {k: v.value(s, kp("shapes", k), _list_of(_int(1))) for k, s in shapes.items()}
    if "tolerance" in d:
        tol = v.table(d["tolerance"], kp("tolerance"), ("atol", "rtol", "outputs"))
        for k in ("atol", "rtol"):
            if k in tol:
                getattr(case, k)[None] = v.value(tol[k], kp("tolerance", k), _TOLERANCE_KEYS[k])
        outs = tol.get("outputs", {})
        v.table(outs, kp("tolerance", "outputs"), tuple(outs) if isinstance(outs, dict) else ())
        for oname, o in outs.items():
            v.table(o, kp("tolerance", "outputs", oname), ("atol", "rtol"))
            for k in ("atol", "rtol"):
                if k in o:
                    getattr(case, k)[oname] = v.value(o[k], kp("tolerance", "outputs", oname, k), _TOLERANCE_KEYS[k])
    if "budgets" in d:
        case.budgets = _budgets(v, d["budgets"], kp("budgets"), case)
    # combinations that cannot work
    from edgekit.quantize.recipes import Approach

    needs_cal = [q for q in (["int8"] if quant == ["auto"] else quant)
                 if TFLITE_MODES[q] in (Approach.INT8, Approach.INT16X8)] + [q for q in oq if q == "static"]
    if needs_cal and not case.calibration:
        v.fail(("models", name), f"quantization {', '.join(needs_cal)} needs calibration data: add "
                                 "calibration = \"data.npz\" (or \"digits\", or \"random\", whose results are not meaningful)")
    if case.budgets.max_accuracy_drop is not None and not case.eval_data:
        v.fail(kp("budgets", "max_accuracy_drop"), "needs labelled data: add eval_data = \"data.npz\" (or \"digits\")")
    if case.budgets.max_accuracy_drop is not None and not (quant or oq):
        v.fail(kp("budgets", "max_accuracy_drop"), "applies to quantized artifacts, and this model has none "
                                                   "(add quantize = [...] or onnx_quantize = [...])")
    if case.calibration_method and "static" not in oq:
        v.fail(kp("calibration_method"), "applies to onnx_quantize = [\"static\"] only")
    if case.io_dtype != "float32" and not any(q in ("int8", "int16x8", "auto") for q in quant):
        v.fail(kp("io_dtype"), "integer I/O applies to quantize = [\"int8\"] or [\"int16x8\"]")
    if not case.labels():
        v.fail(kp("formats"), "no artifacts: list at least one format or quantization mode")
    return case


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
