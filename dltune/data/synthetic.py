"""Synthetic data with a learnable signal, for tests and benchmarks (no files needed)."""
from __future__ import annotations

import torch

from dltune.config import DataConfig
from dltune.data.spec import DataSpec, Datasets
from dltune.data.batches import TensorBatches


def synthetic(cfg: DataConfig, batch_size: int, seed: int, rank: int, world: int) -> Datasets:
    """Images (task multiclass/auto) or dense+sparse rows (task binary/regression) of the configured size.

    Labels come from a fixed random projection of the inputs, so models can learn them.
    """
    gen = torch.Generator().manual_seed(seed)
    n_val = max(8, int(cfg.num_samples * cfg.val_fraction))
    n = cfg.num_samples + n_val
    if cfg.task in ("auto", "multiclass"):
        classes = cfg.num_classes or 10
        x = torch.randn(n, cfg.channels, cfg.image_size, cfg.image_size, generator=gen)
        proj = torch.randn(cfg.channels * cfg.image_size * cfg.image_size, classes, generator=gen)
        y = (x.flatten(1) @ proj).argmax(1)
        spec = DataSpec(kind="image", task="multiclass", num_outputs=classes, input_shape=tuple(x.shape[1:]))
        inputs: tuple[torch.Tensor, ...] = (x,)
    else:
        dense = torch.randn(n, cfg.num_features, generator=gen)
        num_sparse = max(1, len(cfg.sparse_cols) or 4)
        buckets = min(cfg.hash_buckets, 1000)
        sparse = torch.randint(0, buckets, (n, num_sparse), generator=gen)
        bucket_effect = torch.randn(num_sparse, buckets, generator=gen)
        score = dense @ torch.randn(cfg.num_features, generator=gen) + bucket_effect.gather(1, sparse.T).sum(0)
        y = (score > 0).float().unsqueeze(1) if cfg.task == "binary" else score.unsqueeze(1)
        spec = DataSpec(kind="tabular", task=cfg.task, num_outputs=1, num_dense=cfg.num_features, num_sparse=num_sparse, hash_buckets=buckets)
        inputs = (dense, sparse)
    train = tuple(t[:-n_val] for t in inputs)
    val = tuple(t[-n_val:] for t in inputs)
    return Datasets(
        train=TensorBatches(train, y[:-n_val], batch_size, True, seed, rank, world),
        val=TensorBatches(val, y[-n_val:], batch_size, False, seed, rank, world),
        spec=spec,
    )
