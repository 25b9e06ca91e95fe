"""``edgekit train``: the user guide's training workflow through Keras itself (parent side:
config, data, label handling and outputs; the model trains in the TensorFlow worker)."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import InputError

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
LOSSES = ("categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy", "mse", "mae", "huber")
METRICS = ("accuracy", "mae", "auc", "precision", "recall")


@dataclass
class TrainConfig:
    model: str = "mlp"
    data: str = "digits"
    label_column: str = "label"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 4e-3
    momentum: float = 0.9
    loss: str = "categorical_crossentropy"
    metrics: list[str] = field(default_factory=lambda: ["accuracy"])
    epochs: int = 30
    batch_size: int = 32
    validation_split: float = 0.1
    test_split: float = 0.2
    seed: int = 0
    loop: str = "fit"  # fit | custom (tf.GradientTape)
    clip_norm: float | None = None
    early_stopping: dict[str, Any] | None = None  # monitor, patience, restore_best_weights
    reduce_lr: dict[str, Any] | None = None  # monitor, factor, patience, min_lr
    checkpoint: dict[str, Any] | None = None  # monitor, save_best_only
    stop_at: dict[str, Any] | None = None  # metric, value

    def validate(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
        if self.loss not in LOSSES:
            raise InputError(f"unknown loss {self.loss!r}; choose from {', '.join(LOSSES)}")
        bad = [m for m in self.metrics if m not in METRICS]
        if bad:
            raise InputError(f"unknown metric {bad}; choose from {', '.join(METRICS)}")
        if self.loop not in ("fit", "custom"):
            raise InputError(f"--loop must be fit or custom, got {self.loop!r}")
        if not 0 <= self.validation_split < 1 or not 0 <= self.test_split < 1:
            raise InputError("--validation-split and --test-split must be in [0, 1)")
        if self.epochs < 1 or self.batch_size < 1:
            raise InputError("--epochs and --batch-size must be at least 1")


def load_recipe(path: str) -> dict[str, Any]:
    """A TOML recipe: the same keys as the flags (callbacks as tables); unknown keys are errors."""
    from edgekit.safeparse import load_toml, read_text

    if not Path(path).exists():
        raise InputError(f"recipe {path} does not exist")
    data = load_toml(read_text(path, "recipe"), f"recipe {path}")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = [k for k in data if k not in known]
    if unknown:
        raise InputError(f"recipe {path}: unknown key(s) {unknown}; known: {sorted(known)}")
    return data


def load_data(cfg: TrainConfig) -> tuple[dict[str, np.ndarray] | np.ndarray, np.ndarray, str]:
    """Inputs (an array, or a dict by input name) and labels."""
    from edgekit.feeds import load_arrays

    if cfg.data == "digits":
        from sklearn.datasets import load_digits

        from edgekit.models.digits import _upsample

        d = load_digits()
        x = _upsample(d.images.astype(np.float64) / 16.0, 28).reshape(len(d.images), -1).astype(np.float32)
        return x, d.target.astype(np.int64), "scikit-learn digits (8x8 upsampled to 28x28, scaled to [0, 1])"
    if "," in cfg.data and all(part.endswith(".npy") for part in cfg.data.split(",")):
        xp, yp = cfg.data.split(",")
        return load_arrays(xp)[""], load_arrays(yp)[""], f"{Path(xp).name} + {Path(yp).name}"
    p = Path(cfg.data)
    if p.suffix == ".csv":
        if not p.is_file():
            raise InputError(f"data {cfg.data} does not exist")
        with open(p) as fh:
            header = [h.strip() for h in fh.readline().split(",")]
        if cfg.label_column not in header:
            raise InputError(f"{cfg.data} has no label column {cfg.label_column!r}; columns: {header}")
        table = np.loadtxt(p, delimiter=",", skiprows=1, ndmin=2)
        li = header.index(cfg.label_column)
        x = np.delete(table, li, axis=1).astype(np.float32)
        return x, table[:, li], f"CSV {p.name} (label column {cfg.label_column!r})"
    arrays = load_arrays(cfg.data)
    if "y" not in arrays:
        raise InputError(f"{cfg.data} has no labels: store them as 'y' (and inputs as 'x' or by input name)")
    y = arrays.pop("y")
    x: Any = arrays.pop("x") if list(arrays) == ["x"] else arrays
    return x, y, p.name


def split(x: Any, y: np.ndarray, test_split: float, seed: int) -> tuple[Any, np.ndarray, Any, np.ndarray]:
    n = len(y)
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_split))
    test, train = order[:n_test], order[n_test:]

    def take(a: Any, idx: np.ndarray) -> Any:
        return {k: v[idx] for k, v in a.items()} if isinstance(a, dict) else a[idx]

    return take(x, train), y[train], take(x, test), y[test]


def write_outputs(out: Path, result: dict[str, Any]) -> None:
    from edgekit.fsutil import atomic_write_json

    atomic_write_json(out / "history.json", result)
    plot_history(result["history"], out / "history.png")


def plot_history(history: dict[str, list[float]], path: Path) -> None:
    """Loss and metric curves per epoch, training and validation, as a PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgekit.fsutil import atomic_write_bytes

    names = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        epochs = range(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], label=f"train {name}")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], label=f"validation {name}")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def config_from(recipe: str | None, flags: dict[str, Any]) -> TrainConfig:
    """Recipe values, overridden by flags the user gave (None means not given)."""
    base = load_recipe(recipe) if recipe else {}
    given = {k: v for k, v in flags.items() if v is not None}
    cfg = TrainConfig(**{**base, **given})
    cfg.validate()
    return cfg


def to_json(cfg: TrainConfig) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def run_training(cfg: TrainConfig, out_dir: str, progress: Any = None, pool: Any = None) -> dict[str, Any]:
    """Load the data, split off the test set, train in the TensorFlow worker, write
    ``model.keras``, ``history.json`` and ``history.png`` under ``out_dir``."""
    from edgekit.models.source import detect
    from edgekit.models.zoo import BUILDERS
    from edgekit.pipeline import check_out_dir
    from edgekit.worker import default_pool

    say = progress or (lambda _m: None)
    source = None if cfg.model in BUILDERS else detect(cfg.model).to_json()
    x, y, described = load_data(cfg)
    x_train, y_train, x_test, y_test = split(x, y, cfg.test_split, cfg.seed)
    out = Path(out_dir)
    check_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    say(f"training {cfg.model} on {described}: {len(y_train)} samples, {len(y_test)} held out for test; "
        f"{cfg.optimizer} lr {cfg.learning_rate:g}, {cfg.loss}, {cfg.loop} loop")
    pool = pool or default_pool()
    res = pool.tf.call("edgekit.models.training:train", to_json(cfg), source, x_train, y_train, x_test, y_test,
                       str(out), on_progress=say, tag="train")
    res["config"] = to_json(cfg)
    res["data"] = described
    write_outputs(out, res)
    return res
