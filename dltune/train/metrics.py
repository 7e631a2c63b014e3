"""Losses and validation metrics per task, reduced over all ranks."""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dltune.data import DataSpec, Task
from dltune.data.batches import Batch

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Collectives(Protocol):
    """Reductions over all ranks (the run context offers them)."""

    def all_sum(self, values: list[float]) -> list[float]: ...

    def all_gather(self, obj: Any) -> list[Any]: ...


def task_loss(task: Task, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    output = output.float()
    if task == "multiclass":
        return F.cross_entropy(output, target)
    if task == "binary":
        return F.binary_cross_entropy_with_logits(output, target)
    return F.mse_loss(output, target)


def to_device(batch: Batch, device: torch.device, channels_last: bool = False) -> Batch:
    inputs, target = batch
    moved = []
    for i, t in enumerate(inputs):
        t = t.to(device, non_blocking=True)
        if i == 0 and channels_last and t.dim() == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        moved.append(t)
    return tuple(moved), target.to(device, non_blocking=True)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[Batch], spec: DataSpec, device: torch.device, ranks: Collectives, loss: LossFn,
             autocast: contextlib.AbstractContextManager | None = None, channels_last: bool = False) -> dict[str, float]:
    """val_loss plus val_acc (multiclass), val_auc / val_logloss / val_acc (binary) or val_rmse / val_mae (regression).

    Runs the plain module (not the DDP wrapper): evaluation has no collectives
    per batch, so ranks with different batch counts cannot hang.
    """
    was_training = model.training
    model.eval()
    loss_sum = correct = count = abs_err = 0.0
    outputs, targets = [], []
    for batch in batches:
        inputs, target = to_device(batch, device, channels_last)
        with autocast or contextlib.nullcontext():
            out = model(*inputs)
        out = out.float()
        n = len(target)
        loss_sum += loss(out, target).item() * n
        count += n
        if spec.task == "multiclass":
            correct += (out.argmax(1) == target).sum().item()
        elif spec.task == "binary":
            correct += ((out > 0).float() == target).float().mean(1).sum().item()
            outputs.append(torch.sigmoid(out).cpu().numpy())
            targets.append(target.cpu().numpy())
        else:
            abs_err += (out - target).abs().mean(1).sum().item()
    model.train(was_training)
    loss_sum, correct, count, abs_err = ranks.all_sum([loss_sum, correct, count, abs_err])
    count = max(count, 1.0)
    metrics = {"val_loss": loss_sum / count}
    if spec.task == "multiclass":
        metrics["val_acc"] = correct / count
    elif spec.task == "binary":
        metrics["val_acc"] = correct / count
        metrics.update(_binary_metrics(outputs, targets, ranks))
    else:
        metrics["val_rmse"] = math.sqrt(metrics["val_loss"])
        metrics["val_mae"] = abs_err / count
    return metrics


def _binary_metrics(outputs: list[np.ndarray], targets: list[np.ndarray], ranks: Collectives) -> dict[str, float]:
    """AUC and log-loss need every prediction: gather them (validation sets are small next to training)."""
    from sklearn.metrics import log_loss, roc_auc_score

    empty = np.zeros((0, 1), dtype=np.float32)
    parts = ranks.all_gather((np.concatenate(outputs) if outputs else empty, np.concatenate(targets) if targets else empty))
    prob = np.concatenate([p for p, _ in parts if len(p)] or [empty])
    true = np.concatenate([t for _, t in parts if len(t)] or [empty])
    aucs, losses = [], []
    for j in range(prob.shape[1]):
        if len(np.unique(true[:, j])) == 2:
            aucs.append(roc_auc_score(true[:, j], prob[:, j]))
            losses.append(log_loss(true[:, j], np.clip(prob[:, j], 1e-7, 1 - 1e-7), labels=[0, 1]))
    return {
        "val_auc": float(np.mean(aucs)) if aucs else float("nan"),
        "val_logloss": float(np.mean(losses)) if losses else float("nan"),
    }
