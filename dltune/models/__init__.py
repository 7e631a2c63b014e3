"""Models by name, or any user factory given as 'package.module:function'."""
from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import nn

from dltune.config import ModelConfig
from dltune.data import DataSpec
from dltune.errors import ConfigError

Factory = Callable[[ModelConfig, DataSpec], nn.Module]


def _registry() -> dict[str, Factory]:
    from dltune.models import ctr, vision

    return {"mlp": vision.mlp, "cnn": vision.cnn, "resnet18": vision.resnet18, "deepfm": ctr.deepfm}


def load_factory(target: str) -> Factory:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"model.target: cannot import module '{module_name}' ({exc})") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"model.target: '{module_name}' has no callable '{attr}'")
    return factory


def build_model(cfg: ModelConfig, spec: DataSpec) -> nn.Module:
    factory = load_factory(cfg.target) if cfg.target else _registry()[cfg.name]
    model = factory(cfg, spec)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model.target: {cfg.target} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
