"""A user's own code, written to disk by the tests as a real package: ``byo_user``.

It knows nothing of dltune's internals: its own Dataset classes, model, loss
and evaluation, a plain no-torch objective, a searcher and a scheduler of its
own, and functions that go wrong in the ways the bad-input tests check.
"""
from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "byo_user"

TRAIN = '''
"""A plain PyTorch training function for dltune's run context."""
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, IterableDataset

CONSTANT = 3


class Points(Dataset):
    """2-D points labelled by the sign of x0 + x1; an item is (input, label, index)."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 2, generator=g)
        self.y = (self.x.sum(1) > 0).long()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i], i


class PointStream(IterableDataset):
    """The same points as a stream (no length, no random access)."""

    def __init__(self, n, seed):
        self.points = Points(n, seed)

    def __iter__(self):
        for i in range(len(self.points)):
            yield self.points[i]


class Net(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, x):
        return self.body(x)


def smooth_hinge(logits, y):
    """The user's own loss: a softplus margin between the right and the wrong logit."""
    right = logits.gather(1, y[:, None]).squeeze(1)
    wrong = logits.gather(1, (1 - y)[:, None]).squeeze(1)
    return nn.functional.softplus(1.0 - (right - wrong)).mean()


def evaluate(model, data):
    with torch.no_grad():
        logits = model(data.x)
        return {"val_loss": float(smooth_hinge(logits, data.y)), "val_acc": float((logits.argmax(1) == data.y).float().mean())}


def train(ctx):
    p = ctx.params
    torch.manual_seed(ctx.config.train.seed)
    model = Net(int(p.get("hidden", 8)))
    ddp = ctx.prepare_model(model)
    opt = torch.optim.SGD(model.parameters(), lr=float(p["lr"]), momentum=0.9)
    state = ctx.load_checkpoint()
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        for group in opt.param_groups:
            group["lr"] = float(p["lr"])  # a PBT exploit hands the donor's state with this trial's lr
    data = PointStream(512, 0) if p.get("iterable") else Points(512, 0)
    loader = ctx.prepare_loader(data, batch_size=32)
    val = Points(256, 1)
    seen, first = [], ctx.epoch
    for epoch in range(first, ctx.config.train.epochs):
        ddp.train()
        for x, y, idx in loader:
            loss = smooth_hinge(ddp(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if epoch == first:
                seen.extend(idx.tolist())
        time.sleep(float(p.get("sleep", 0.0)))
        metrics = {**evaluate(model, val), "lr": opt.param_groups[0]["lr"], "donor_epoch": state["epoch"] if state else 0}
        ctx.report(metrics, checkpoint={"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1})
    shards = ctx.all_gather(seen)
    return {"shard_sizes": [len(s) for s in shards], "disjoint": len(set().union(*map(set, shards))) == sum(map(len, shards)),
            "world_size": ctx.world_size, "threads": ctx.all_gather(torch.get_num_threads())}


def objective(ctx):
    """A plain objective: no torch at all."""
    x = float(ctx.params["x"])
    start = ctx.load_checkpoint() or {"step": 0}
    for step in range(start["step"], ctx.config.train.epochs):
        ctx.report({"loss": (x - 2.0) ** 2 + 1.0 / (step + 1)}, checkpoint={"step": step + 1})


def simulated(ctx):
    """An objective whose every epoch costs 10 simulated seconds, reported cumulatively as sim_seconds,
    and params.sleep real seconds until output.dir holds a file named RESUMED (the kill tests' resumed
    search has no kill to wait for)."""
    from pathlib import Path

    x = float(ctx.params["x"])
    start = ctx.load_checkpoint() or {"step": 0}
    for step in range(start["step"], ctx.config.train.epochs):
        if not Path(ctx.config.output.dir, "RESUMED").exists():
            time.sleep(float(ctx.params.get("sleep", 0.0)))
        ctx.report({"loss": (x - 2.0) ** 2 + 1.0 / (step + 1), "sim_seconds": 10.0 * (step + 1)}, checkpoint={"step": step + 1})


def fails(ctx):
    raise RuntimeError(f"the user's code broke on rank {ctx.rank}")


def dies_once(ctx):
    """Every rank dies at step 2 of its first attempt (its marker, params.marker.RANK, absent), then
    finishes from its checkpoint; each rank marks itself, whichever Ray stops first."""
    from pathlib import Path

    marker = Path(f"{ctx.params['marker']}.{ctx.rank}")
    first_attempt = not marker.exists()
    start = ctx.load_checkpoint() or {"step": 0}
    for step in range(start["step"], ctx.config.train.epochs):
        if step == 2 and first_attempt:
            marker.write_text("died")
            raise RuntimeError(f"rank {ctx.rank} dies once")
        ctx.report({"loss": 1.0 / (step + 1)}, checkpoint={"step": step + 1})
    return {"resumed_from": start["step"]}


def fails_above(ctx):
    """Fails for a learning rate above 0.1, trains (a plain objective) below."""
    if ctx.params["lr"] > 0.1:
        raise FloatingPointError(f"lr {ctx.params['lr']} diverged")
    ctx.report({"val_loss": ctx.params["lr"]})


def two_args(ctx, extra):
    pass


def same_epoch_twice(ctx):
    ctx.report({"loss": 1.0, "epoch": 1})
    ctx.report({"loss": 0.5, "epoch": 1})


def numpy_checkpoint(ctx):
    ctx.report({"loss": 1.0}, checkpoint={"weights": np.zeros(3)})


def raises_on_import():
    pass
'''

PLUGINS = '''
"""A searcher and a scheduler of the user's own."""
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher


class ListSearcher(Searcher):
    """Suggests the given values of one key in order."""

    def __init__(self, key, values, metric=None, mode=None):
        super().__init__(metric=metric, mode=mode)
        self.key, self.values, self.next = key, list(values), 0

    def set_search_properties(self, metric, mode, config, **spec):
        self._metric, self._mode = metric, mode
        return True  # the values come from the constructor; Ray's param_space is ignored

    def suggest(self, trial_id):
        if self.next >= len(self.values):
            return Searcher.FINISHED
        self.next += 1
        return {self.key: self.values[self.next - 1]}

    def on_trial_complete(self, trial_id, result=None, error=False):
        pass


class StopAt(FIFOScheduler):
    """Stops every trial once it reports epoch ``at``."""

    def __init__(self, at, time_attr="training_iteration"):
        super().__init__()
        self.at, self.time_attr = at, time_attr

    def on_trial_result(self, tune_controller, trial, result):
        return TrialScheduler.STOP if result[self.time_attr] >= self.at else TrialScheduler.CONTINUE
'''

BROKEN = '''
raise ImportError("byo_user.broken needs a library this machine lacks")
'''

DATA = '''
"""data.target and train.loss for the built-in loop."""
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, IterableDataset

import dltune


class Blobs(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, 3, (n,), generator=g)
        self.x = torch.randn(n, 6, generator=g) * 0.5 + F.one_hot(self.y, 6).float() * 2

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


class BlobStream(IterableDataset):
    def __init__(self, n, seed):
        self.blobs = Blobs(n, seed)

    def __iter__(self):
        return (self.blobs[i] for i in range(len(self.blobs)))


def blobs(cfg):
    train = BlobStream(600, 0) if cfg.params.get("iterable") else Blobs(600, 0)
    return dltune.TorchDatasets(train=train, val=Blobs(150, 1), task="multiclass", num_outputs=3, input_shape=(6,))


def label_smoothed(output, target):
    return F.cross_entropy(output, target, label_smoothing=0.1)
'''


def write_user_package(root: Path) -> Path:
    """Write byo_user/ under ``root`` and return ``root`` (the directory to put on the Python path)."""
    pkg = root / PACKAGE
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    for name, text in (("train.py", TRAIN), ("plugins.py", PLUGINS), ("broken.py", BROKEN), ("data.py", DATA)):
        (pkg / name).write_text(text.lstrip())
    return root


def forget_user_package() -> None:
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]
