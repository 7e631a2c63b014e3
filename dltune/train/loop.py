"""THE training loop: ``train_loop(cfg, session)`` runs unchanged in-process,
under torchrun and inside Ray Train workers. Distribution comes from the
environment; results go to the session. No Ray imports here."""
from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dltune.config import Config
from dltune.data import Datasets, build_datasets
from dltune.errors import ConfigError
from dltune.models import build_model, count_parameters
from dltune.train import checkpoint, dist
from dltune.train.metrics import evaluate, loss_fn, to_device
from dltune.train.optim import build_optimizer, build_scheduler
from dltune.train.session import Session


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_precision(cfg: Config, device: torch.device) -> str:
    precision = cfg.train.precision
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision: fp16 needs a GPU (use bf16 or fp32 on CPU)")
    return precision


def autocast_for(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass
class Run:
    """Everything built before the first epoch."""

    cfg: Config
    info: dist.DistInfo
    data: Datasets
    model: nn.Module  # the plain module (checkpoints, eval, export)
    train_model: nn.Module  # DDP and/or compiled wrapper used for training steps
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    precision: str
    steps_per_epoch: int
    start_epoch: int
    example: tuple[torch.Tensor, ...]

    @property
    def channels_last(self) -> bool:
        return self.cfg.train.channels_last and self.data.spec.kind == "image"


def build_run(cfg: Config, session: Session, info: dist.DistInfo) -> Run:
    seed_everything(cfg.train.seed)
    data = build_datasets(cfg.data, cfg.train.batch_size, cfg.train.seed, info.rank, info.world)
    model = build_model(cfg.model, data.spec).to(info.device)
    channels_last = cfg.train.channels_last and data.spec.kind == "image"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    steps = len(data.train)
    if cfg.train.max_steps_per_epoch:
        steps = min(steps, cfg.train.max_steps_per_epoch)
    if data.pre_sharded:
        steps = dist.all_min(steps, info)  # shards differ in size; every rank must take the same steps
    if steps == 0:
        raise ConfigError(f"train.batch_size: no full training step per epoch on rank {info.rank} (too little data for {info.world} process(es))")
    precision = resolve_precision(cfg, info.device)
    optimizer = build_optimizer(cfg.optim, model)
    scheduler = build_scheduler(cfg.optim, optimizer, steps, cfg.train.epochs)
    scaler = torch.amp.GradScaler(info.device.type, enabled=precision == "fp16")
    start_epoch = 0
    state = session.resume_state(info.device)
    if state is not None:
        start_epoch = checkpoint.restore(state, model, optimizer, scheduler, scaler, cfg.optim)
    train_model: nn.Module = model
    if info.world > 1 or info.initialized_here:
        train_model = DistributedDataParallel(model, device_ids=[info.device.index] if info.device.type == "cuda" else None)
    if cfg.train.compile:
        train_model = torch.compile(train_model)
    return Run(cfg, info, data, model, train_model, optimizer, scheduler, scaler, precision, steps, start_epoch, example_inputs(data))


def shard_report(run: Run) -> dict[str, Any]:
    """Training samples per rank in the first epoch and whether any two ranks shared one."""
    ids = run.data.train.sample_ids()
    if run.data.pre_sharded:
        ids = run.data.train.ids
    all_ids = dist.gather(ids.numpy(), run.info)
    union = np.unique(np.concatenate(all_ids)) if all_ids else np.zeros(0)
    sizes = [int(len(x)) for x in all_ids]
    return {"train_samples_per_rank": sizes, "ranks_disjoint": int(len(union)) == sum(sizes)}


def train_epoch(run: Run, epoch: int, session: Session) -> dict[str, float]:
    cfg, info = run.cfg, run.info
    run.data.train.set_epoch(epoch)
    run.train_model.train()
    autocast = autocast_for(run.precision, info.device)
    start = time.perf_counter()
    loss_sum = samples = 0.0
    for step, batch in enumerate(run.data.train, start=1):
        if step > run.steps_per_epoch:
            break
        inputs, target = to_device(batch, info.device, run.channels_last)
        with autocast:
            output = run.train_model(*inputs)
        loss = loss_fn(run.data.spec.task, output, target)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        if cfg.train.grad_clip > 0:
            run.scaler.unscale_(run.optimizer)
            nn.utils.clip_grad_norm_(run.model.parameters(), cfg.train.grad_clip)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.scheduler.step()
        n = len(target)
        loss_sum += loss.item() * n
        samples += n
        elapsed = time.perf_counter() - start
        session.progress.step(epoch + 1, cfg.train.epochs, step, run.steps_per_epoch, loss.item(), samples * info.world / max(elapsed, 1e-9), elapsed)
    if info.device.type == "cuda":
        torch.cuda.synchronize(info.device)
    elapsed = time.perf_counter() - start
    loss_sum, samples = dist.all_sum([loss_sum, samples], run.info)  # DDP keeps ranks in step, so elapsed is shared
    return {
        "train_loss": loss_sum / max(samples, 1.0),
        "epoch_time_s": elapsed,
        "samples_per_s": samples / max(elapsed, 1e-9),
        "lr": run.optimizer.param_groups[0]["lr"],
    }


def example_inputs(data: Datasets) -> tuple[torch.Tensor, ...]:
    """Two samples, for TorchScript tracing and export from a checkpoint."""
    inputs, _ = next(iter(data.val), None) or next(iter(data.train))
    return tuple(t[:2].cpu() for t in inputs)


def checkpoint_extra(run: Run) -> dict[str, Any]:
    optim = run.cfg.optim
    return {
        "optim": {"lr": optim.lr, "weight_decay": optim.weight_decay, "momentum": optim.momentum},
        "data_spec": dataclasses.asdict(run.data.spec),
        "example": run.example,
    }


def train_loop(cfg: Config, session: Session) -> dict[str, Any]:
    """Train ``cfg`` from scratch or from the session's checkpoint; returns the run summary."""
    info = dist.setup(cfg)
    try:
        run = build_run(cfg, session, info)
        shards = shard_report(run)
        plan = {
            "dataset": cfg.data.name,
            "model": cfg.model.target or cfg.model.name,
            "parameters": count_parameters(run.model),
            "train_samples": sum(shards["train_samples_per_rank"]),
            "val_samples": int(dist.all_sum([float(run.data.val.num_samples)], info)[0]),
            "world_size": info.world,
            "device": str(info.device) if info.world == 1 else f"{info.device.type} x{info.world}",
            "precision": run.precision,
            "start_epoch": run.start_epoch,
        }
        session.start(plan)
        metrics: dict[str, float] = {}
        for epoch in range(run.start_epoch, cfg.train.epochs):
            metrics = {"epoch": epoch + 1, **train_epoch(run, epoch, session)}
            last = epoch + 1 == cfg.train.epochs
            if last or (epoch + 1) % cfg.train.eval_every == 0:
                metrics.update(evaluate(run.model, run.data.val, run.data.spec, info, autocast_for(run.precision, info.device), run.channels_last))
            due = last or (epoch + 1) % cfg.train.checkpoint_every == 0
            state = checkpoint.capture(run.model, run.optimizer, run.scheduler, run.scaler, epoch + 1, checkpoint_extra(run)) if due else None
            session.report(metrics, state)
        summary = {**plan, "epochs": cfg.train.epochs, **shards}
        session.finish(run.model, run.example, summary)
        return {**summary, "final_metrics": metrics}
    finally:
        dist.teardown(info)
