"""The run context: the one object a training function receives, under every launcher.

    def train(ctx: dltune.RunContext) -> None:
        model = ctx.prepare_model(MyNet(ctx.params["width"]))
        loader = ctx.prepare_loader(MyDataset(...), batch_size=64)
        state = ctx.load_checkpoint()            # None, or the dict to go on from
        for epoch in range(ctx.epoch, ctx.config.train.epochs):
            ...
            ctx.report({"val_loss": loss}, checkpoint={"model": model.state_dict()})

Where reports and checkpoints go (local files and TensorBoard, Ray Train, Ray
Tune) is decided by the launcher that made the context; a training function
never sees it. No Ray imports here.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import math
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dltune.config import Config
from dltune.errors import ConfigError
from dltune.train import checkpoint as ckpt_io
from dltune.train import dist
from dltune.train.dist import DistInfo
from dltune.train.session import Session

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

# torch and numpy are imported where they are needed: a training function without torch
# (a plain objective) runs without paying for its import. A value can only be a tensor or
# an array once its library is loaded, hence the sys.modules look-ups.
PLAIN_TYPES = (str, int, float, bool, complex, type(None))


def resolve_precision(cfg: Config, device: str) -> str:
    precision = cfg.train.precision
    if precision == "auto":
        return "bf16" if device.startswith("cuda") else "fp32"
    if precision == "fp16" and not device.startswith("cuda"):
        raise ConfigError("train.precision: fp16 needs a GPU (use bf16 or fp32 on CPU)")
    return precision


def _tensor_types() -> tuple[type, ...]:
    torch = sys.modules.get("torch")
    return (torch.Tensor, torch.dtype, torch.device, torch.Size) if torch is not None else ()


def _allowed_in_checkpoint(value: Any, where: str) -> None:
    """Refuse what ``torch.load(weights_only=True)`` could not read back, naming where it sits."""
    if isinstance(value, PLAIN_TYPES + _tensor_types()):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where}: key {key!r} is a {type(key).__name__}; checkpoint keys must be strings or integers")
            _allowed_in_checkpoint(item, f"{where}[{key!r}]")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _allowed_in_checkpoint(item, f"{where}[{i}]")
        return
    np = sys.modules.get("numpy")
    hint = " (torch.as_tensor it)" if np is not None and isinstance(value, (np.ndarray, np.generic)) else ""
    raise TypeError(f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which a weights-only checkpoint cannot hold{hint}; "
                    "checkpoints take tensors, state dicts, numbers, strings and lists/dicts of them")


def _metric_value(key: str, value: Any) -> float | int | str:
    if isinstance(value, (bool, int, float, str)):
        return value
    torch, np = sys.modules.get("torch"), sys.modules.get("numpy")
    if torch is not None and isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"ctx.report(): metrics[{key!r}] is a tensor of shape {tuple(value.shape)}; report one number per metric")
        return float(value.detach().cpu().item())
    if np is not None and isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"ctx.report(): metrics[{key!r}] is a {type(value).__name__}; report numbers (or strings)")


class RunContext:
    """What a training function gets: its parameters, its place in the job, and where results go.

    Attributes: ``params`` (the config's params section, with a trial's
    sampled values), ``config`` (the whole resolved dltune.config.Config),
    ``rank``, ``local_rank``, ``world_size``, ``is_main``, ``device`` and
    ``epoch`` (epochs reported so far, counting those of a checkpoint resumed from).
    """

    def __init__(self, cfg: Config, session: Session, info: DistInfo, resumed: dict[str, Any] | None = None) -> None:
        self.config = cfg
        self.params: dict[str, Any] = cfg.params
        self.rank = info.rank
        self.local_rank = info.local_rank
        self.world_size = info.world
        self._info = info
        self._session = session
        self._resumed = resumed
        self.epoch = int(resumed["epoch"]) if resumed else 0
        self.last_metrics: dict[str, Any] = {}
        self._samplers: list[Any] = []
        self._epoch_started = time.perf_counter()
        self._epoch_samples = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @functools.cached_property
    def device(self) -> torch.device:
        """This process's torch device (cpu, or the cuda device of LOCAL_RANK)."""
        import torch

        return torch.device(self._info.device)

    @property
    def precision(self) -> str:
        return resolve_precision(self.config, self._info.device)

    def parse_args(self, parser: argparse.ArgumentParser) -> argparse.Namespace:
        """A ported script's argparse arguments, with ``params`` in place of the command line:
        each key is an argument's dest (``batch_size`` for ``--batch-size``) and its value is
        used as it is (YAML and the searcher already typed it); arguments missing from params
        keep their defaults, so a ``required=True`` one must be given a default instead."""
        return parser.parse_args([], namespace=argparse.Namespace(**self.params))

    # --- building blocks -------------------------------------------------------
    def prepare_model(self, model: nn.Module, channels_last: bool | None = None) -> nn.Module:
        """The model on this process's device, channels_last / DDP / torch.compile as configured
        (``channels_last`` overrides train.channels_last, e.g. False for a non-image model).
        Keep a reference to the module you pass in: it is the one to checkpoint and export."""
        import torch
        from torch.nn.parallel import DistributedDataParallel

        model = model.to(self.device)
        if self.config.train.channels_last if channels_last is None else channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self._info.ddp:
            model = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.config.train.compile:
            model = torch.compile(model)
        return model

    def prepare_loader(self, dataset: Dataset, batch_size: int | None = None, shuffle: bool = True, drop_last: bool | None = None,
                       **loader_kwargs: Any) -> DataLoader:
        """A DataLoader over this rank's share of ``dataset``.

        Map-style datasets get a sampler that splits them between ranks and
        reshuffles each epoch by itself. ``drop_last`` (default: ``shuffle``)
        cuts the samples to a multiple of the world size, so ranks see disjoint
        samples and take the same steps, as DDP training needs; without it
        every sample is read once (evaluation). Iterable datasets are split
        between ranks and DataLoader workers. batch_size defaults to
        train.batch_size, workers to data.loader_workers."""
        from torch.utils.data import DataLoader, IterableDataset

        from dltune.train.sharding import ShardedIterable, ShardSampler

        loader_kwargs.setdefault("num_workers", self.config.data.loader_workers)
        loader_kwargs.setdefault("pin_memory", self.device.type == "cuda")
        batch_size = batch_size or self.config.train.batch_size
        if isinstance(dataset, IterableDataset):
            sharded = ShardedIterable(dataset, self.rank, self.world_size)
            sharded.set_epoch(self.epoch)
            self._samplers.append(sharded)
            return DataLoader(sharded, batch_size=batch_size, **loader_kwargs)
        sampler = ShardSampler(len(dataset), self.rank, self.world_size, shuffle, self.config.train.seed,  # type: ignore[arg-type]
                               drop_last=shuffle if drop_last is None else drop_last)
        sampler.set_epoch(self.epoch)
        self._samplers.append(sampler)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, **loader_kwargs)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision as train.precision says (bf16 on GPU by default, nothing on CPU)."""
        precision = self.precision
        if precision == "fp32":
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)

    # --- collectives (plain values when there is one process) -----------------
    def all_sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over all ranks."""
        return dist.all_sum(values, self._info)

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (any picklable value), in rank order, on every rank."""
        return dist.gather(obj, self._info)

    # --- results -------------------------------------------------------------
    def report(self, metrics: Mapping[str, Any], checkpoint: Mapping[str, Any] | None = None) -> None:
        """One epoch's (or one evaluation's) metrics, on every rank; rank 0's are kept.

        ``metrics["epoch"]`` is counted for you when absent. ``checkpoint`` (a
        dict of tensors, state dicts and plain values) is saved by rank 0
        only, atomically, wherever the run keeps its checkpoints; it is what
        load_checkpoint() returns when the run resumes or a PBT trial takes it over."""
        values = {str(k): _metric_value(str(k), v) for k, v in metrics.items()}
        epoch = values.get("epoch", self.epoch + 1)
        if isinstance(epoch, float) and epoch.is_integer():
            epoch = int(epoch)
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch <= self.epoch:
            raise ValueError(f"ctx.report(): metrics['epoch'] must be an integer above the last reported epoch {self.epoch}, got {epoch!r} "
                             "(leave it out to have epochs counted for you)")
        values["epoch"] = epoch
        packed = None
        if checkpoint is not None:  # checked on every rank, so all of them fail alike
            if not isinstance(checkpoint, Mapping):
                raise TypeError(f"ctx.report(): checkpoint must be a dict, got {type(checkpoint).__name__}")
            _allowed_in_checkpoint(dict(checkpoint), "checkpoint")
            packed = ckpt_io.pack(epoch, dict(checkpoint)) if self.is_main else None
        self._session.report(values, packed)
        self.epoch = epoch
        self.last_metrics = values
        for sampler in self._samplers:
            sampler.set_epoch(epoch)
        self._epoch_started, self._epoch_samples = time.perf_counter(), 0

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint to go on from (on every rank, tensors on ``device``), or None for a fresh start:
        a resumed run's newest, a restarted worker group's last, or a PBT donor's."""
        return self._resumed["state"] if self._resumed else None

    def export_model(self, model: nn.Module, example_inputs: tuple[torch.Tensor, ...] | None = None) -> None:
        """Write the trained model (rank 0): model/model_state.pt, and model_scripted.pt
        (TorchScript) when output.export_torchscript and ``example_inputs`` allow."""
        from torch.nn.parallel import DistributedDataParallel

        while isinstance(model, DistributedDataParallel) or hasattr(model, "_orig_mod"):  # DDP, torch.compile, in any order
            model = model.module if isinstance(model, DistributedDataParallel) else model._orig_mod
        if not self.is_main:
            return
        training, first = model.training, next(model.parameters(), None)
        try:
            self._session.export(model, example_inputs)
        finally:  # export moves the model to the CPU in eval mode: give the caller back the model it had
            model.train(training)
            if first is not None:
                model.to(first.device)

    # --- console -------------------------------------------------------------
    def log(self, message: str) -> None:
        """A line for people (rank 0, unless the run is quiet)."""
        if self.is_main:
            self._session.progress.line(message)

    def progress(self, step: int, steps: int, loss: float, samples: int = 0) -> None:
        """A live step line on a terminal (ignored elsewhere); ``samples`` in this step, for samples/s."""
        self._epoch_samples += samples
        elapsed = time.perf_counter() - self._epoch_started
        rate = self._epoch_samples * self.world_size / max(elapsed, 1e-9)
        loss = float(loss.item()) if hasattr(loss, "item") else float(loss)
        self._session.progress.step(self.epoch + 1, self.config.train.epochs, step, steps, loss if math.isfinite(loss) else float("nan"), rate, elapsed)
