"""dltune from Python: the same configs and overrides as the CLI.

    python examples/python_api.py
"""
from __future__ import annotations

import dltune

if __name__ == "__main__":
    summary = dltune.train("configs/quickstart.yaml", ["train.epochs=3", "output.experiment=api-train"], overwrite=True)
    print("val_acc after 3 epochs:", round(summary["final_metrics"]["val_acc"], 4))

    result = dltune.tune("configs/quickstart_tune.yaml", ["tune.num_samples=4", "train.epochs=4", "output.experiment=api-tune"], overwrite=True)
    print("best trial:", result.best_trial, "val_acc", round(result.best_metric, 4), "lr", result.best_config.optim.lr)
    print("train it: dltune train", f"{result.experiment_dir}/best_config.yaml")
