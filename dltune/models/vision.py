"""Image (and plain dense) models: mlp, a small conv net, resnet18."""
from __future__ import annotations

import math

import torch
from torch import nn

from dltune.config import ModelConfig
from dltune.data import DataSpec
from dltune.errors import ConfigError


def hidden_stack(in_dim: int, widths: list[int], dropout: float) -> tuple[nn.Sequential, int]:
    """Linear-ReLU(-Dropout) layers; returns them and the output width."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        in_dim = width
    return nn.Sequential(*layers), in_dim


class TabularMLP(nn.Module):
    """Dense features plus one embedding per sparse column, through an MLP."""

    def __init__(self, cfg: ModelConfig, spec: DataSpec) -> None:
        super().__init__()
        self.embedding = nn.Embedding(max(1, spec.num_sparse * spec.hash_buckets), cfg.embed_dim)
        self.register_buffer("offsets", torch.arange(spec.num_sparse, dtype=torch.long) * spec.hash_buckets, persistent=False)
        body, width = hidden_stack(spec.num_dense + spec.num_sparse * cfg.embed_dim, cfg.hidden, cfg.dropout)
        self.body = body
        self.head = nn.Linear(width, spec.num_outputs)

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        emb = self.embedding(sparse + self.offsets).flatten(1)
        return self.head(self.body(torch.cat([dense, emb], dim=1)))


def mlp(cfg: ModelConfig, spec: DataSpec) -> nn.Module:
    if spec.kind == "tabular":
        return TabularMLP(cfg, spec)
    body, width = hidden_stack(math.prod(spec.input_shape), cfg.hidden, cfg.dropout)
    return nn.Sequential(nn.Flatten(), body, nn.Linear(width, spec.num_outputs))


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


def cnn(cfg: ModelConfig, spec: DataSpec) -> nn.Module:
    """Two conv blocks (width, 2*width), global average pool, dropout, linear."""
    if spec.kind != "image":
        raise ConfigError("model.name: cnn needs image data")
    channels = spec.input_shape[0]
    return nn.Sequential(
        _conv_block(channels, cfg.width),
        _conv_block(cfg.width, 2 * cfg.width),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(cfg.dropout),
        nn.Linear(2 * cfg.width, spec.num_outputs),
    )


def resnet18(cfg: ModelConfig, spec: DataSpec) -> nn.Module:
    """torchvision's ResNet-18 (random init); the CIFAR stem keeps 32x32 inputs at full resolution."""
    from torchvision.models import resnet18 as tv_resnet18

    if spec.kind != "image":
        raise ConfigError("model.name: resnet18 needs image data")
    model = tv_resnet18(weights=None, num_classes=spec.num_outputs)
    channels = spec.input_shape[0]
    if cfg.cifar_stem:
        model.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif channels != 3:
        model.conv1 = nn.Conv2d(channels, 64, 7, stride=2, padding=3, bias=False)
    if cfg.dropout > 0:
        model.fc = nn.Sequential(nn.Dropout(cfg.dropout), model.fc)
    return model
