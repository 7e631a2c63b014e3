"""Where a training run's metrics, checkpoints and model go.

``LocalSession`` writes the experiment directory (config.yaml, metrics.jsonl,
TensorBoard events, checkpoints/, model export, summary.json last). Only rank
0 writes; every rank reads the checkpoint it resumes from. The Ray sessions in
dltune.launch extend it; the loop only sees this interface.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from typing import Any

import torch
from torch import nn

from dltune import config as config_mod
from dltune import storage
from dltune.config import Config
from dltune.errors import UserError
from dltune.train import checkpoint
from dltune.train.export import export_model
from dltune.train.progress import Progress

SUMMARY = "summary.json"
KEEP_CHECKPOINTS = 2


def experiment_dir(cfg: Config) -> str:
    return storage.join(cfg.output.dir, cfg.output.experiment)


def read_summary(exp_dir: str) -> dict[str, Any] | None:
    path = storage.join(exp_dir, SUMMARY)
    return json.loads(storage.read_text(path)) if storage.exists(path) else None


def prepare_experiment_dir(exp_dir: str, resume: bool, overwrite: bool) -> None:
    """Refuse to mix a new run into an old one unless asked to resume or overwrite."""
    if not storage.exists(exp_dir):
        if resume:
            raise UserError(f"--resume: no earlier run at {storage.redact(exp_dir)}")
        return
    if overwrite:
        storage.delete(exp_dir)
        return
    if resume:
        if read_summary(exp_dir) is not None:
            raise UserError(f"--resume: the run at {storage.redact(exp_dir)} already finished (summary.json exists); use --overwrite to start over")
        return
    if storage.list_files(exp_dir):
        state = "a finished run" if read_summary(exp_dir) is not None else "an unfinished run (no summary.json)"
        raise UserError(f"{storage.redact(exp_dir)} already holds {state}; pass --resume to continue it, --overwrite to replace it, or set output.experiment")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Session:
    """The interface the loop talks to; this base writes nothing (ranks other than 0)."""

    def __init__(self, cfg: Config, rank: int = 0, resume: bool = False) -> None:
        self.cfg = cfg
        self.rank = rank
        self.resume = resume
        self.exp_dir = experiment_dir(cfg)
        self.progress = Progress(enabled=False)

    @property
    def checkpoint_dir(self) -> str:
        return storage.join(self.exp_dir, "checkpoints")

    def start(self, plan: dict[str, Any]) -> None:
        """Called once the model is built, before the first epoch."""

    def resume_state(self, map_location: torch.device) -> dict[str, Any] | None:
        """The newest checkpoint when resuming, else None (read by every rank)."""
        if not self.resume:
            return None
        found = checkpoint.list_checkpoints(self.checkpoint_dir)
        return checkpoint.load(found[-1][1], map_location) if found else None

    def report(self, metrics: dict[str, float], state: dict[str, Any] | None) -> None:
        """One epoch's metrics (on every rank, already reduced) and, when due, its checkpoint."""

    def finish(self, model: nn.Module, example: tuple[torch.Tensor, ...], summary: dict[str, Any]) -> None:
        """The run completed: export the model, then write summary.json."""


class LocalSession(Session):
    """Rank 0's writer of the experiment directory (local, NFS, HDFS or S3)."""

    def __init__(self, cfg: Config, rank: int = 0, resume: bool = False, verbose: bool = True) -> None:
        super().__init__(cfg, rank, resume)
        self.remote = storage.is_remote(self.exp_dir)
        # TensorBoard and checkpoints are written locally first; remote dirs get a copy after each epoch.
        self.work_dir = tempfile.mkdtemp(prefix="dltune-run-") if self.remote else self.exp_dir
        self.progress = Progress(enabled=verbose)
        self.writer: Any = None
        self.started = time.time()
        self.history: list[dict[str, float]] = []

    def _local(self, *parts: str) -> str:
        return os.path.join(self.work_dir, *parts)

    def start(self, plan: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        if self.remote and self.resume:
            storage.download_dir(self.exp_dir, self.work_dir)
        os.makedirs(self._local("checkpoints"), exist_ok=True)
        start_epoch = plan.get("start_epoch", 0)
        self.history = [m for m in self._read_history() if m.get("epoch", 0) <= start_epoch]
        self._write_history()
        self._write_text("config.yaml", config_mod.to_yaml(self.cfg))
        # purge_step drops events of epochs after the checkpoint we resumed from.
        self.writer = SummaryWriter(self._local("tensorboard"), purge_step=start_epoch + 1 if start_epoch else None)
        self.progress.start(plan)

    def _read_history(self) -> list[dict[str, float]]:
        path = self._local("metrics.jsonl")
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def _write_history(self) -> None:
        self._write_text("metrics.jsonl", "".join(json.dumps({k: _json_safe(v) for k, v in m.items()}) + "\n" for m in self.history))

    def _write_text(self, name: str, text: str) -> None:
        storage.write_text(self._local(name), storage.redact(text))
        if self.remote:
            storage.write_text(storage.join(self.exp_dir, name), storage.redact(text))

    def _sync(self) -> None:
        if self.remote:
            storage.upload_dir(self._local("tensorboard"), storage.join(self.exp_dir, "tensorboard"))

    def report(self, metrics: dict[str, float], state: dict[str, Any] | None) -> None:
        epoch = int(metrics["epoch"])
        if state is not None:
            self._save_checkpoint(state, epoch)
        for key, value in metrics.items():
            if key != "epoch" and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, epoch)
        self.writer.flush()
        self.history.append(metrics)
        self._write_history()
        self._sync()
        self.progress.epoch(metrics, self.cfg.train.epochs)

    def _save_checkpoint(self, state: dict[str, Any], epoch: int) -> None:
        data = checkpoint.to_bytes(state)
        storage.write_bytes(checkpoint.checkpoint_path(self.checkpoint_dir, epoch), data)
        for _, old in checkpoint.list_checkpoints(self.checkpoint_dir)[:-KEEP_CHECKPOINTS]:
            storage.delete(old)

    def finish(self, model: nn.Module, example: tuple[torch.Tensor, ...], summary: dict[str, Any]) -> None:
        exported = export_model(model, example, storage.join(self.exp_dir, "model"), self.cfg.output.export_torchscript, prefix="model/")
        final = {k: _json_safe(v) for k, v in (self.history[-1] if self.history else {}).items()}
        self.writer.add_hparams(_hparams(self.cfg), {f"hparam/{k}": v for k, v in final.items() if k.startswith("val_") and v is not None}, run_name=".")
        self.writer.close()
        self._sync()
        summary = {**summary, "status": "finished", "final_metrics": final, "wall_time_s": round(time.time() - self.started, 3), "exported": exported, "experiment_dir": storage.redact(self.exp_dir)}
        self._write_text(SUMMARY, json.dumps(summary, indent=2) + "\n")
        self.progress.done(summary)
        if self.remote:
            shutil.rmtree(self.work_dir, ignore_errors=True)


def _hparams(cfg: Config) -> dict[str, Any]:
    """Scalar config values for TensorBoard's HParams tab."""
    flat: dict[str, Any] = {}
    for section in ("model", "optim", "train", "data"):
        for key, value in vars(getattr(cfg, section)).items():
            if isinstance(value, (int, float, str, bool)):
                flat[f"{section}.{key}"] = storage.redact(value) if isinstance(value, str) else value
    return flat
