"""Step 1 of the user guide: build the reference MLP and train it on handwritten digits.

    python examples/01_build_and_train.py [OUT_DIR]
"""
import sys

from edgekit.models.zoo import BUILDERS
from edgekit.train import TrainConfig, run_training

out = sys.argv[1] if len(sys.argv) > 1 else "guide-run"
print("reference models:", ", ".join(BUILDERS))

# Adam 0.001, categorical cross-entropy, accuracy; early stopping and reduce-on-plateau.
cfg = TrainConfig(
    model="mlp", data="digits", optimizer="adam", learning_rate=1e-3, loss="categorical_crossentropy",
    metrics=["accuracy"], epochs=30, batch_size=32, validation_split=0.1,
    early_stopping={"monitor": "val_loss", "patience": 5, "restore_best_weights": True},
    reduce_lr={"monitor": "val_loss", "factor": 0.5, "patience": 2, "min_lr": 1e-6},
)
cfg.validate()
result = run_training(cfg, out, progress=print)
print(f"test accuracy {result['test']['accuracy']:.4f} after {result['epochs_run']} epochs -> {result['model']}")
assert result["test"]["accuracy"] >= 0.95
