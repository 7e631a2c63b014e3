"""Where a run context's metrics, checkpoints and model go (behind dltune.train.context).

``LocalSession`` writes the experiment directory (config.yaml, metrics.jsonl,
TensorBoard events, checkpoints/, model export, summary.json last). Only rank
0 writes; every rank reads the checkpoint it resumes from. The Ray sessions in
dltune.launch and dltune.hpo extend it; training functions never see it.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from typing import TYPE_CHECKING, Any

from dltune import config as config_mod
from dltune import storage
from dltune.config import Config
from dltune.errors import UserError
from dltune.train import checkpoint
from dltune.train.event_upload import EventUpload
from dltune.train.progress import EpochProgress

if TYPE_CHECKING:
    import torch
    from torch import nn

SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"
KEEP_CHECKPOINTS = 2  # at least 2: the Ray launcher's checkpoints name the newest before Ray records it


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
    """Where a run context's reports go; this base writes nothing (ranks other than 0)."""

    def __init__(self, cfg: Config, rank: int = 0, resume: bool = False) -> None:
        self.cfg = cfg
        self.rank = rank
        self.resume = resume
        self.exp_dir = experiment_dir(cfg)
        self.progress = EpochProgress(enabled=False)

    @property
    def checkpoint_dir(self) -> str:
        return storage.join(self.exp_dir, CHECKPOINTS)

    def start(self, start_epoch: int) -> None:
        """Called once before the training function, with the epoch it goes on from."""

    def resume_state(self, map_location: str) -> dict[str, Any] | None:
        """The newest checkpoint (as checkpoint.pack made it) when resuming, else None (read by every rank)."""
        if not self.resume:
            return None
        found = checkpoint.list_checkpoints(self.checkpoint_dir)
        return checkpoint.load(found[-1][1], map_location) if found else None

    def report(self, metrics: dict[str, Any], state: dict[str, Any] | None) -> str | None:
        """One report's metrics (on every rank) and rank 0's packed checkpoint, if any; returns
        where, relative to the experiment dir, the checkpoint was kept (None: not kept here)."""
        return None

    def export(self, model: nn.Module, example: tuple[torch.Tensor, ...] | None) -> None:
        """The training function handed over its trained model (rank 0)."""

    def finish(self, summary: dict[str, Any]) -> None:
        """The training function returned: write summary.json."""

    def close(self) -> None:
        """After the training function, whether it returned or raised: let go of what the session holds."""


class LocalSession(Session):
    """Rank 0's writer of the experiment directory (local, NFS, HDFS or S3)."""

    def __init__(self, cfg: Config, rank: int = 0, resume: bool = False, verbose: bool = True) -> None:
        super().__init__(cfg, rank, resume)
        self.remote = storage.is_remote(self.exp_dir)
        # A remote run's TensorBoard events are written locally first and sent on after each epoch (EventUpload).
        self.work_dir = tempfile.mkdtemp(prefix="dltune-run-") if self.remote else self.exp_dir
        self.progress = EpochProgress(enabled=verbose)
        self.writer: Any = None
        self.started = time.time()
        self.history: list[dict[str, Any]] = []
        self.exported: dict[str, str] = {}
        self.checkpoints = 0
        self.events = EventUpload(self._local("tensorboard"), storage.join(self.exp_dir, "tensorboard")) if self.remote else None

    def _local(self, *parts: str) -> str:
        return os.path.join(self.work_dir, *parts)

    def start(self, start_epoch: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        if self.remote and self.resume:
            storage.download_dir(self.exp_dir, self.work_dir)
        if self.events is not None:
            self.events.mark_uploaded()
        os.makedirs(self._local(CHECKPOINTS), exist_ok=True)
        self.history = [m for m in self._read_history() if m.get("epoch", 0) <= start_epoch]
        self._write_history()
        self._write_text("config.yaml", config_mod.to_yaml(self.cfg))
        # purge_step drops events of epochs after the checkpoint we resumed from.
        self.writer = SummaryWriter(self._local("tensorboard"), purge_step=start_epoch + 1 if start_epoch else None)

    def _read_history(self) -> list[dict[str, Any]]:
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
        if self.events is not None:
            self.events()

    def report(self, metrics: dict[str, Any], state: dict[str, Any] | None) -> str | None:
        epoch = int(metrics["epoch"])
        kept = self._save_epoch(state, epoch) if state is not None else None
        for key, value in metrics.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, epoch)
        self.writer.flush()
        self.history.append(metrics)
        self._write_history()
        self._sync()
        self.progress.epoch(metrics, self.cfg.train.epochs)
        return kept

    def _save_epoch(self, state: dict[str, Any], epoch: int) -> str:
        data = checkpoint.to_bytes(state)
        path = checkpoint.checkpoint_path(self.checkpoint_dir, epoch)
        storage.write_bytes(path, data)
        self.checkpoints += 1
        for _, old in checkpoint.list_checkpoints(self.checkpoint_dir)[:-KEEP_CHECKPOINTS]:
            storage.delete(old)
        return f"{CHECKPOINTS}/{path.rsplit('/', 1)[-1]}"

    def export(self, model: nn.Module, example: tuple[torch.Tensor, ...] | None) -> None:
        from dltune.train.export import export_model

        with_torchscript = self.cfg.output.export_torchscript and example is not None
        self.exported = export_model(model, example or (), storage.join(self.exp_dir, "model"), with_torchscript, prefix="model/")

    def finish(self, summary: dict[str, Any]) -> None:
        final = {k: _json_safe(v) for k, v in (self.history[-1] if self.history else {}).items()}
        self.writer.add_hparams(_hparams(self.cfg), {f"hparam/{k}": v for k, v in final.items() if k.startswith("val_") and isinstance(v, (int, float))}, run_name=".")
        self.writer.close()
        self._sync()
        kept = {"checkpoints": storage.redact(self.checkpoint_dir)} if self.checkpoints or checkpoint.list_checkpoints(self.checkpoint_dir) else {}
        summary = {**summary, "status": "finished", "final_metrics": final, "wall_time_s": round(time.time() - self.started, 3),
                   "exported": self.exported or kept, "experiment_dir": storage.redact(self.exp_dir)}
        self._write_text(SUMMARY, json.dumps(summary, indent=2, default=str) + "\n")
        self.progress.done(summary, ["metrics.jsonl", "tensorboard/", *(["checkpoints/"] if kept else []), *(["model/"] if self.exported else []), "summary.json"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.remote:  # the local copies of a remote run's files, on error too
            shutil.rmtree(self.work_dir, ignore_errors=True)


def _hparams(cfg: Config) -> dict[str, Any]:
    """Scalar config values (and params) for TensorBoard's HParams tab."""
    flat: dict[str, Any] = {}
    sections = {name: vars(getattr(cfg, name)) for name in ("model", "optim", "train", "data")}
    for section, values in {**sections, "params": cfg.params}.items():
        for key, value in values.items():
            if isinstance(value, (int, float, str, bool)):
                flat[f"{section}.{key}"] = storage.redact(value) if isinstance(value, str) else value
    return flat
