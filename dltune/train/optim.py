"""Optimizer and per-step learning-rate schedule from the optim section."""
from __future__ import annotations

import math

import torch
from torch import nn

from dltune.config import OptimConfig


def build_optimizer(cfg: OptimConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.Adam if cfg.name == "adam" else torch.optim.AdamW
    return cls(params, lr=cfg.lr, betas=(cfg.momentum, 0.999), weight_decay=cfg.weight_decay)


def lr_factor(cfg: OptimConfig, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """Multiplier of the peak lr at ``step`` for the none / cosine / step schedules (with warm-up)."""
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "cosine":
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    if cfg.schedule == "step":
        return cfg.gamma ** ((step // steps_per_epoch) // cfg.step_epochs)
    return 1.0


def build_scheduler(cfg: OptimConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
    total = max(1, steps_per_epoch * epochs)
    if cfg.schedule == "onecycle":
        pct = cfg.warmup_epochs / epochs if cfg.warmup_epochs else 0.3
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total, pct_start=min(0.9, max(0.01, pct)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg, step, steps_per_epoch, total))


def apply_hyperparameters(cfg: OptimConfig, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler, saved: dict[str, float]) -> None:
    """Put this config's optimizer hyperparameters into state loaded from a checkpoint.

    Loading an optimizer state restores the lr and weight decay it was saved
    with; after a PBT exploit the trial's (mutated) config must win. The lr is
    rescaled rather than overwritten so the schedule's position is kept.
    """
    ratio = cfg.lr / saved["lr"] if saved.get("lr") else 1.0
    if ratio != 1.0:
        scheduler.base_lrs = [lr * ratio for lr in scheduler.base_lrs]
    for group in optimizer.param_groups:
        for key in ("lr", "initial_lr", "max_lr", "min_lr"):  # the last three: OneCycleLR's bookkeeping
            if key in group:
                group[key] *= ratio
        group["weight_decay"] = cfg.weight_decay
        if "momentum" in group:
            group["momentum"] = cfg.momentum
        if "betas" in group:
            group["betas"] = (cfg.momentum, group["betas"][1])
