"""``edgekit train`` settings from flags and from a ``--recipe`` TOML, read the same way.

A recipe takes exactly the flags' names (``learning_rate`` or ``learning-rate``) and their
value forms: a number for ``early_stopping``/``reduce_lr`` (the patience) or a table for their
details, ``true`` or a table for ``checkpoint``, a string (``"accuracy,mae"``) or a list for
``metrics``, ``"METRIC=VALUE"`` or a table for ``stop_at``, ``out`` for the output directory.
Flags given on the command line win. Every error is one line naming the key (and, in a
recipe, the file and line).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from edgekit.errors import InputError
from edgekit.train import LOSSES, METRICS, OPTIMIZERS, TrainConfig

Fail = Callable[[tuple[str, ...], str], None]

DEFAULT_OUT = "edgekit-train"
CALLBACK_DEFAULTS = {"monitor": "val_loss", "lr_factor": 0.5, "min_lr": 1e-6}
_TABLES = {
    "early_stopping": ("patience", "monitor", "restore_best_weights"),
    "reduce_lr": ("patience", "monitor", "factor", "min_lr"),
    "checkpoint": ("monitor", "save_best_only"),
    "stop_at": ("metric", "value"),
}


def _int(lo: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"expected a whole number >= {lo}, got {v!r}")
        return v
    return check


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"expected a number, got {v!r}")
    return float(v)


def _str(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"expected a string, got {v!r}")
    return v.strip()


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        s = _str(v)
        if s not in options:
            raise ValueError(f"{s!r} is not one of {', '.join(options)}")
        return s
    return check


def _metrics(v: Any) -> list[str]:
    items = [m.strip() for m in v.split(",")] if isinstance(v, str) else v
    if not isinstance(items, list) or not all(isinstance(m, str) for m in items):
        raise ValueError(f'expected a string ("accuracy,mae") or a list of strings, got {v!r}')
    items = [m for m in items if m]
    bad = [m for m in items if m not in METRICS]
    if bad:
        raise ValueError(f"unknown metric {', '.join(map(repr, bad))}; choose from {', '.join(METRICS)}")
    return items


def _loss(v: Any) -> str | dict[str, str]:
    """One loss for every output, or one per output: a table, or ``["cls=...", "reg=mse"]``."""
    if isinstance(v, str) and "=" not in v:
        return _choice(LOSSES)(v)
    items = [v] if isinstance(v, str) else v
    if isinstance(items, list):
        table = {}
        for item in items:
            name, sep, loss = str(item).partition("=")
            if not sep or not name.strip():
                raise ValueError(f"expected LOSS or OUTPUT=LOSS, got {item!r}")
            table[name.strip()] = loss.strip()
        items = table
    if not isinstance(items, dict) or not items:
        raise ValueError(f"expected a loss name or a table of output = loss, got {v!r}")
    return {str(k): _choice(LOSSES)(x) for k, x in items.items()}


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {v!r}")
    return v


SCALARS: dict[str, Callable[[Any], Any]] = {
    "model": _str, "data": _str, "label_column": _str, "optimizer": _choice(OPTIMIZERS),
    "learning_rate": _float, "weight_decay": _float, "momentum": _float, "loss": _loss,
    "metrics": _metrics, "epochs": _int(1), "batch_size": _int(1), "validation_split": _float,
    "test_split": _float, "seed": _int(0), "loop": _choice(("fit", "custom")), "clip_norm": _float,
    "lr_factor": _float, "min_lr": _float, "monitor": _str, "out": _str,
}
KEYS = tuple(SCALARS) + tuple(_TABLES)


def normalize(raw: dict[str, Any], fail: Fail) -> dict[str, Any]:
    """Check each value's form; callbacks become tables. ``fail(keypath, why)`` raises."""
    import difflib

    out: dict[str, Any] = {}
    for key, v in raw.items():
        k = key.replace("-", "_")
        if k == "loss" and isinstance(v, dict) and v:  # one per output: errors name the output's key
            out[k] = {str(o): _checked(_choice(LOSSES), lv, (key, str(o)), fail) for o, lv in v.items()}
        elif k in SCALARS:
            out[k] = _checked(SCALARS[k], v, (key,), fail)
        elif k in _TABLES:
            out[k] = _callback(k, v, (key,), fail)
        else:
            near = difflib.get_close_matches(k, KEYS, n=1)
            fail((key,), "unknown key" + (f" (did you mean {near[0]}?)" if near else f"; known keys: {', '.join(KEYS)}"))
    return out


def _checked(check: Callable[[Any], Any], v: Any, keypath: tuple[str, ...], fail: Fail) -> Any:
    try:
        return check(v)
    except ValueError as exc:
        fail(keypath, str(exc))


def _callback(k: str, v: Any, keypath: tuple[str, ...], fail: Fail) -> dict[str, Any] | None:
    """A patience number, ``true``/``"METRIC=VALUE"`` shorthands, or the detailed table."""
    if k in ("early_stopping", "reduce_lr") and not isinstance(v, dict):
        return {"patience": _checked(_int(0), v, keypath, fail)}
    if k == "checkpoint" and not isinstance(v, dict):
        return {} if _checked(_bool, v, keypath, fail) else None
    if k == "stop_at" and isinstance(v, str):
        metric, sep, value = v.partition("=")
        try:
            if not sep or not metric.strip():
                raise ValueError
            return {"metric": metric.strip(), "value": float(value)}
        except ValueError:
            fail(keypath, f"expected METRIC=VALUE, e.g. val_accuracy=0.97, got {v!r}")
    if not isinstance(v, dict):
        fail(keypath, f"expected a table of {', '.join(_TABLES[k])}, got {v!r}")
    table: dict[str, Any] = {}
    checks = {"patience": _int(0), "monitor": _str, "restore_best_weights": _bool, "factor": _float,
              "min_lr": _float, "save_best_only": _bool, "metric": _str, "value": _float}
    for sub, sv in v.items():
        if sub not in _TABLES[k]:
            fail(keypath + (sub,), f"unknown key; {k} takes {', '.join(_TABLES[k])}")
        table[sub] = _checked(checks[sub], sv, keypath + (sub,), fail)
    if k == "stop_at" and set(table) != {"metric", "value"}:
        fail(keypath, "needs both metric and value")
    return table


def read_recipe(path: str) -> dict[str, Any]:
    """A recipe's settings, normalised; errors name the file, the line and the key."""
    from edgekit.check.config import ConfigError, _Validator
    from edgekit.safeparse import load_toml, read_text

    p = Path(path)
    if not p.exists():
        raise InputError(f"recipe {path} does not exist")
    text = read_text(path, "recipe")
    data = load_toml(text, f"recipe {p.name}")  # nesting-limited: a hostile file is one line
    v = _Validator(p, text, ())
    try:
        return normalize(data, lambda kp, why: v.fail(kp, why))
    except ConfigError as exc:
        raise InputError(str(exc)) from None


def _flag_fail(keypath: tuple[str, ...], why: str) -> None:
    raise InputError(f"--{keypath[0].replace('_', '-')}: {why}")


def build(recipe: str | None, flags: dict[str, Any]) -> tuple[TrainConfig, str]:
    """The configuration and output directory: recipe values, then the flags that were given
    (``None``: not given). Callback details (``monitor``, ``lr_factor``, ``min_lr``) fill in
    what a callback's own table leaves out."""
    values = read_recipe(recipe) if recipe else {}
    values.update(normalize({k: v for k, v in flags.items() if v is not None}, _flag_fail))
    shared = {k: values.pop(k, d) for k, d in CALLBACK_DEFAULTS.items()}
    out = values.pop("out", DEFAULT_OUT)
    if values.get("early_stopping") is not None:
        values["early_stopping"] = {"monitor": shared["monitor"], "restore_best_weights": True, **values["early_stopping"]}
    if values.get("reduce_lr") is not None:
        values["reduce_lr"] = {"monitor": shared["monitor"], "factor": shared["lr_factor"], "min_lr": shared["min_lr"],
                               **values["reduce_lr"]}
    if values.get("checkpoint") is not None:
        values["checkpoint"] = {"monitor": shared["monitor"], "save_best_only": True, **values["checkpoint"]}
    cfg = TrainConfig(**values)
    cfg.validate()
    return cfg, out
