"""``train_loop(cfg, session)``: run the config's training function with a run context.

The one path under every launcher (in-process, torchrun ranks, Ray Train
workers, Tune trials): join the process group, load the checkpoint to go on
from, call ``train.fn`` (the built-in loop unless the config names another),
and hand the summary to the session. No Ray imports here.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dltune import plugins
from dltune.config import Config
from dltune.train import dist
from dltune.train.context import RunContext
from dltune.train.session import Session

TrainFn = Callable[[RunContext], Any]
BUILTIN = "dltune.train.builtin:train"  # imported only when used: it needs torch, a train.fn may not


def resolve_train_fn(cfg: Config, fn: TrainFn | None = None) -> TrainFn:
    """``fn`` when given (a Python object, checked), else what train.fn names (the built-in loop by default)."""
    if fn is not None:
        if not callable(fn):
            raise TypeError(f"fn: expected a function taking the run context, got {type(fn).__name__}")
        plugins.check_arity("train.fn", fn, *plugins.FUNCTIONS["train.fn"])
        return fn
    return plugins.resolve_function("train.fn", cfg.train.fn or BUILTIN)


def train_loop(cfg: Config, session: Session, fn: TrainFn | None = None) -> dict[str, Any]:
    """Train ``cfg`` from scratch or from the session's checkpoint; returns the run summary."""
    info = None
    try:
        train_fn = resolve_train_fn(cfg, fn)
        info = dist.setup(cfg)
        ctx = RunContext(cfg, session, info, session.resume_state(info.device))
        session.start(ctx.epoch)
        name = plugins.import_path_of(train_fn)
        if name != BUILTIN:  # the built-in loop describes its data and model itself
            resumed = f", resuming after epoch {ctx.epoch}" if ctx.epoch else ""
            ctx.log(f"running {name}: {ctx.world_size} process(es) on {ctx._info.device}{resumed}")
        returned = train_fn(ctx)
        summary: dict[str, Any] = {"epochs": ctx.epoch}
        if isinstance(returned, dict):
            summary.update(returned)
        elif returned is not None:
            summary["returned"] = returned
        session.finish(summary)
        return {**summary, "final_metrics": ctx.last_metrics}
    finally:
        try:
            session.close()
        finally:
            if info is not None:
                dist.teardown(info)
