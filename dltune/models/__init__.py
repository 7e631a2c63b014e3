"""Models by name, or any user factory given as 'package.module:function'."""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from dltune import plugins
from dltune.config import ModelConfig
from dltune.data import DataSpec
from dltune.errors import ConfigError

Factory = Callable[[ModelConfig, DataSpec], nn.Module]


def _registry() -> dict[str, Factory]:
    from dltune.models import ctr, vision

    return {"mlp": vision.mlp, "cnn": vision.cnn, "resnet18": vision.resnet18, "deepfm": ctr.deepfm}


def build_model(cfg: ModelConfig, spec: DataSpec) -> nn.Module:
    if cfg.target:
        factory = plugins.resolve_function("model.target", cfg.target)
    else:
        factory = _registry()[cfg.name]
    model = factory(cfg, spec)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model.target: {cfg.target} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
