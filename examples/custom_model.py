"""A user model plugged in by name, without touching dltune:

    PYTHONPATH=examples dltune train configs/quickstart.yaml model.target=custom_model:build model.kwargs.channels=24

The factory receives the model section (ModelConfig) and the data spec
(dltune.data.DataSpec: input shape, task, number of outputs) and returns a
torch.nn.Module whose forward takes the batch inputs.
"""
from __future__ import annotations

from torch import nn

from dltune.config import ModelConfig
from dltune.data import DataSpec


def build(cfg: ModelConfig, spec: DataSpec) -> nn.Module:
    if spec.kind != "image":
        raise ValueError("custom_model.build expects image data")
    channels = int(cfg.kwargs.get("channels", 16))
    return nn.Sequential(
        nn.Conv2d(spec.input_shape[0], channels, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Dropout(cfg.dropout),
        nn.Linear(4 * channels, spec.num_outputs),
    )
