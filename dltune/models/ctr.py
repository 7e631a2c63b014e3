"""CTR models over dense + hashed sparse features."""
from __future__ import annotations

import torch
from torch import nn

from dltune.config import ModelConfig
from dltune.data import DataSpec
from dltune.errors import ConfigError
from dltune.models.vision import hidden_stack


class DeepFM(nn.Module):
    """DeepFM (Guo et al., 2017): first-order terms + factorisation machine over field
    embeddings + an MLP over the same embeddings; dense features are fields too,
    each scaling a learned vector. One logit per output (label column)."""

    def __init__(self, cfg: ModelConfig, spec: DataSpec) -> None:
        super().__init__()
        if spec.num_dense + spec.num_sparse == 0:
            raise ConfigError("model.name: deepfm needs at least one feature column")
        k, outputs = cfg.embed_dim, spec.num_outputs
        rows = max(1, spec.num_sparse * spec.hash_buckets)
        self.sparse_embed = nn.Embedding(rows, k)
        self.sparse_linear = nn.Embedding(rows, outputs)
        self.dense_embed = nn.Parameter(torch.randn(spec.num_dense, k) * 0.01)
        self.dense_linear = nn.Linear(spec.num_dense, outputs) if spec.num_dense else None
        self.register_buffer("offsets", torch.arange(spec.num_sparse, dtype=torch.long) * spec.hash_buckets, persistent=False)
        nn.init.normal_(self.sparse_embed.weight, std=0.01)
        nn.init.zeros_(self.sparse_linear.weight)
        deep, width = hidden_stack((spec.num_dense + spec.num_sparse) * k, cfg.hidden, cfg.dropout)
        self.deep = deep
        self.deep_head = nn.Linear(width, outputs)
        self.fm_head = nn.Linear(1, outputs, bias=False)
        self.bias = nn.Parameter(torch.zeros(outputs))

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        ids = sparse + self.offsets
        fields = torch.cat([dense.unsqueeze(-1) * self.dense_embed, self.sparse_embed(ids)], dim=1)  # [B, F, k]
        first = self.sparse_linear(ids).sum(1) + self.bias
        if self.dense_linear is not None:
            first = first + self.dense_linear(dense)
        # FM: 0.5 * ((sum v)^2 - sum v^2), summed over the embedding width
        fm = 0.5 * (fields.sum(1).pow(2) - fields.pow(2).sum(1)).sum(1, keepdim=True)
        deep = self.deep_head(self.deep(fields.flatten(1)))
        return first + self.fm_head(fm) + deep


def deepfm(cfg: ModelConfig, spec: DataSpec) -> nn.Module:
    if spec.kind != "tabular":
        raise ConfigError("model.name: deepfm needs tabular data")
    return DeepFM(cfg, spec)
