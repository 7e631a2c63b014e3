"""The built-in training function (the default ``train.fn``), written only against the
public run context: data and model by name (or data.target / model.target), the optim
section's optimizer and schedule, validation metrics by task, exact resume."""
from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from dltune import plugins
from dltune.config import Config
from dltune.data import Datasets, build_datasets
from dltune.data.batches import Batch
from dltune.data.user import load_user_datasets, user_batches
from dltune.errors import ConfigError
from dltune.models import build_model, count_parameters
from dltune.train import checkpoint, shard_check
from dltune.train.context import RunContext
from dltune.train.metrics import LossFn, evaluate, task_loss, to_device
from dltune.train.optim import build_optimizer, build_scheduler

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_datasets(cfg: Config, ctx: RunContext) -> Datasets:
    """This rank's data: a named dataset, or the user's torch Datasets through the context's loaders."""
    if not cfg.data.target:
        return build_datasets(cfg.data, cfg.train.batch_size, cfg.train.seed, ctx.rank, ctx.world_size)
    user = load_user_datasets(cfg)
    train, val = user_batches(user, ctx.prepare_loader, cfg.train.batch_size)
    return Datasets(train=train, val=val, spec=user.spec())  # type: ignore[arg-type]


def load_loss(cfg: Config, task: str) -> LossFn:
    if not cfg.train.loss:
        return lambda output, target: task_loss(task, output, target)  # type: ignore[arg-type]
    return plugins.resolve_function("train.loss", cfg.train.loss)


@dataclass
class Run:
    """Everything built before the first epoch."""

    cfg: Config
    ctx: RunContext
    data: Datasets
    model: nn.Module  # the plain module (checkpoints, eval, export)
    train_model: nn.Module  # DDP and/or compiled wrapper used for training steps
    loss: LossFn
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    steps_per_epoch: int
    example: tuple[torch.Tensor, ...]

    @property
    def channels_last(self) -> bool:
        return self.cfg.train.channels_last and self.data.spec.kind == "image"


def steps_per_epoch(cfg: Config, data: Datasets, ctx: RunContext) -> int:
    if cfg.train.max_steps_per_epoch and getattr(data.train, "iterable", False):
        steps = cfg.train.max_steps_per_epoch
    else:
        steps = len(data.train)
        if cfg.train.max_steps_per_epoch:
            steps = min(steps, cfg.train.max_steps_per_epoch)
    if data.pre_sharded:
        steps = min(ctx.all_gather(steps))  # shards differ in size; every rank must take the same steps
    if steps == 0:
        raise ConfigError(f"train.batch_size: no full training step per epoch on rank {ctx.rank} (too little data for {ctx.world_size} process(es))")
    return steps


def build_run(cfg: Config, ctx: RunContext) -> Run:
    seed_everything(cfg.train.seed)
    data = load_datasets(cfg, ctx)
    channels_last = cfg.train.channels_last and data.spec.kind == "image"
    model = build_model(cfg.model, data.spec).to(ctx.device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    steps = steps_per_epoch(cfg, data, ctx)
    optimizer = build_optimizer(cfg.optim, model)
    scheduler = build_scheduler(cfg.optim, optimizer, steps, cfg.train.epochs)
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=ctx.precision == "fp16")
    example = example_inputs(data)  # before the RNG state is restored: a DataLoader's iterator draws from it
    state = ctx.load_checkpoint()
    if state is not None:
        checkpoint.restore(state, model, optimizer, scheduler, scaler, cfg.optim)
    train_model = ctx.prepare_model(model, channels_last=channels_last)
    return Run(cfg, ctx, data, model, train_model, load_loss(cfg, data.spec.task), optimizer, scheduler, scaler, steps, example)


def shard_report(run: Run) -> dict[str, Any]:
    """Training samples per rank in the first epoch and whether any two ranks shared one
    (a fixed-size sketch each, not the ids: see shard_check)."""
    ids = run.data.train.ids if run.data.pre_sharded else run.data.train.sample_ids()
    if ids is None:  # an iterable dataset: split by position, ids unknown
        sizes = run.ctx.all_gather(run.steps_per_epoch * run.cfg.train.batch_size)
        return {"train_samples_per_rank": sizes, "ranks_disjoint": None}
    sketches = run.ctx.all_gather(shard_check.sketch(ids))
    return {"train_samples_per_rank": [s.samples for s in sketches], "ranks_disjoint": shard_check.ranks_disjoint(sketches)}


def train_epoch(run: Run, epoch: int) -> dict[str, float]:
    cfg, ctx = run.cfg, run.ctx
    run.data.train.set_epoch(epoch)
    run.train_model.train()
    start = time.perf_counter()
    loss_sum = samples = 0.0
    for step, batch in enumerate(run.data.train, start=1):
        if step > run.steps_per_epoch:
            break
        inputs, target = to_device(batch, ctx.device, run.channels_last)
        with ctx.autocast():
            output = run.train_model(*inputs)
        loss = run.loss(output.float(), target)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        if cfg.train.grad_clip > 0:
            run.scaler.unscale_(run.optimizer)
            nn.utils.clip_grad_norm_(run.model.parameters(), cfg.train.grad_clip)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.scheduler.step()
        n = len(target)
        value = loss.item()
        loss_sum += value * n
        samples += n
        ctx.progress(step, run.steps_per_epoch, value, n)
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    elapsed = time.perf_counter() - start
    loss_sum, samples = ctx.all_sum([loss_sum, samples])  # DDP keeps ranks in step, so elapsed is shared
    return {
        "train_loss": loss_sum / max(samples, 1.0),
        "epoch_time_s": elapsed,
        "samples_per_s": samples / max(elapsed, 1e-9),
        "lr": run.optimizer.param_groups[0]["lr"],
    }


def example_inputs(data: Datasets) -> tuple[torch.Tensor, ...]:
    """Two samples, for TorchScript tracing and export from a checkpoint."""
    batches: Iterable[Batch] = data.val
    first = next(iter(batches), None) or next(iter(data.train))
    return tuple(t[:2].cpu() for t in first[0])


def checkpoint_extra(run: Run) -> dict[str, Any]:
    optim = run.cfg.optim
    return {
        "optim": {"lr": optim.lr, "weight_decay": optim.weight_decay, "momentum": optim.momentum},
        "data_spec": dataclasses.asdict(run.data.spec),
        "example": run.example,
    }


def describe(run: Run, shards: dict[str, Any]) -> dict[str, Any]:
    cfg, ctx = run.cfg, run.ctx
    return {
        "dataset": cfg.data.target or cfg.data.name,
        "model": cfg.model.target or cfg.model.name,
        "parameters": count_parameters(run.model),
        "train_samples": sum(shards["train_samples_per_rank"]),
        "val_samples": int(ctx.all_sum([float(run.data.val.num_samples)])[0]),
        "world_size": ctx.world_size,
        "device": str(ctx.device) if ctx.world_size == 1 else f"{ctx.device.type} x{ctx.world_size}",
        "precision": ctx.precision,
        "start_epoch": ctx.epoch,
    }


def start_line(plan: dict[str, Any]) -> str:
    resumed = f", resuming after epoch {plan['start_epoch']}" if plan.get("start_epoch") else ""
    return (f"training {plan['model']} ({plan['parameters']:,} parameters) on {plan['dataset']} "
            f"[{plan['train_samples']:,} train / {plan['val_samples']:,} val samples], "
            f"{plan['world_size']} process(es) on {plan['device']}, precision {plan['precision']}{resumed}")


def train(ctx: RunContext) -> dict[str, Any]:
    """Train ``ctx.config`` from scratch or from the context's checkpoint; returns what goes into the summary."""
    cfg = ctx.config
    run = build_run(cfg, ctx)
    shards = shard_report(run)
    plan = describe(run, shards)
    ctx.log(start_line(plan))
    evaluate_now: Callable[[], dict[str, float]] = lambda: evaluate(run.model, run.data.val, run.data.spec, ctx.device, ctx, run.loss, ctx.autocast(), run.channels_last)
    for epoch in range(ctx.epoch, cfg.train.epochs):
        metrics: dict[str, float] = train_epoch(run, epoch)
        last = epoch + 1 == cfg.train.epochs
        if last or (epoch + 1) % cfg.train.eval_every == 0:
            metrics.update(evaluate_now())
        due = last or (epoch + 1) % cfg.train.checkpoint_every == 0
        state = checkpoint.capture(run.model, run.optimizer, run.scheduler, run.scaler, epoch + 1, checkpoint_extra(run)) if due else None
        ctx.report({"epoch": epoch + 1, **metrics}, checkpoint=state)
    ctx.export_model(run.model, run.example)
    return {**plan, "epochs": cfg.train.epochs, **shards}
