"""The guide's custom training loop: an explicit tf.GradientTape step with gradient clipping.

    python examples/02_custom_loop.py [OUT_DIR]
"""
import sys

from edgekit.train import TrainConfig, run_training

out = sys.argv[1] if len(sys.argv) > 1 else "guide-custom"
cfg = TrainConfig(model="mlp", data="digits", loop="custom", clip_norm=1.0, epochs=15,
                  early_stopping={"monitor": "val_loss", "patience": 4, "restore_best_weights": True})
cfg.validate()
result = run_training(cfg, out, progress=print)
print(f"custom loop: test accuracy {result['test']['accuracy']:.4f}")
assert result["test"]["accuracy"] >= 0.93
