"""Training functions the tests hand to dltune as function objects. Ray's workers import them by
module name from this folder, which dltune puts on their path: so this module imports nothing
of the tests' own (conftest lives a folder above the test modules, out of a worker's reach)."""
from __future__ import annotations

import sys
import time


def curve(ctx) -> None:
    """Loss falls with the epoch and ranks trials by params.x (and params.y, 0 unset) at every epoch;
    a paused or resumed trial goes on from its checkpoint."""
    start = ctx.load_checkpoint() or {"step": 0}
    for step in range(start["step"], ctx.config.train.epochs):
        ctx.report({"loss": (ctx.params["x"] - 2.0) ** 2 + ctx.params.get("y", 0.0) ** 2 + 1.0 / (step + 1)}, checkpoint={"step": step + 1})


def paced_curve(ctx) -> None:
    """The same losses without checkpoints, each epoch taking params.sleep seconds (0.4 unset)."""
    for step in range(ctx.config.train.epochs):
        time.sleep(ctx.params.get("sleep", 0.4))
        ctx.report({"loss": (ctx.params["x"] - 2.0) ** 2 + 1.0 / (step + 1)})


def breaks_after_its_first_epoch_when_x_is_positive(ctx) -> None:
    """Loss -x, so larger x ranks better; a trial with x > 0 breaks 3 s into its second epoch (by
    then the other trials let through its bracket's first halving have reached the next rung)."""
    start = ctx.load_checkpoint() or {"step": 0}
    for step in range(start["step"], ctx.config.train.epochs):
        if ctx.params["x"] > 0 and step == 1:
            time.sleep(3)
            raise RuntimeError("broke after the halving")
        ctx.report({"loss": -ctx.params["x"] + 0.01 * step}, checkpoint={"step": step + 1})


def torch_free(ctx) -> None:
    """An objective that needs no torch and keeps no checkpoint (checkpoints are torch files)."""
    ctx.report({"loss": abs(ctx.params["x"]), "torch_loaded": "torch" in sys.modules})


def broken(ctx) -> None:
    raise ValueError("no data for this trial")
