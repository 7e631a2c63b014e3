"""Ray Tune's experiment state, made safe to resume after the driver was killed.

Ray writes experiment_state-<session>.json into a staging dir on the driver's node and
copies the whole staging dir to the experiment dir file by file, in place. A driver killed
in the middle of that copy leaves a truncated state file, and Tuner.restore then quietly
starts over with a search that believes it already made its trials. The driver records
where its staging dir is; before a resume we finish the interrupted copy from there, and
refuse, naming the file, when no whole state is left anywhere.

The saved state can also lag behind the checkpoints: a trial that saved `num_to_keep` more
checkpoints between two state saves has deleted the one the state names, and Ray would fail
that trial on resume. It resumes from its newest surviving checkpoint instead.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any

import pyarrow.fs
from ray.train._internal.session import _TrainingResult
from ray.tune import Callback, Checkpoint

from dltune import storage
from dltune.errors import UserError

STAGING_RECORD = "driver_staging.json"
STATE_PREFIX = "experiment_state-"
CHECKPOINT_DIR = re.compile(r"checkpoint_\d+")


class ExperimentStateGuard(Callback):
    """Records the driver's staging dir when the first trial starts, and before a resumed
    search schedules anything, points trials at checkpoints that still exist."""

    def __init__(self, exp_dir: str, verbose: bool) -> None:
        self.exp_dir = exp_dir
        self.verbose = verbose
        self.recorded = False
        self.checked = False

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if not self.checked:
            for trial in trials:
                lost = trial.checkpoint
                if resume_from_surviving_checkpoint(trial) and self.verbose:
                    newest = trial.checkpoint.path.rsplit("/", 1)[-1] if trial.checkpoint else "the start"
                    print(f"resume: trial {trial.trial_id}'s {lost.path.rsplit('/', 1)[-1]} is gone; it resumes from {newest}", flush=True)
            self.checked = True

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if not self.recorded:
            record = {"staging_dir": trial.storage.experiment_driver_staging_path}
            storage.write_text(storage.join(self.exp_dir, STAGING_RECORD), json.dumps(record) + "\n")
            self.recorded = True


def _exists(fs: pyarrow.fs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def resume_from_surviving_checkpoint(trial: Any) -> bool:
    """When the checkpoint the saved state names is gone, rebuild the trial's checkpoint
    book-keeping from the checkpoints on storage, each with the result it was reported with.
    Returns whether it had to."""
    manager = trial.run_metadata.checkpoint_manager
    latest = manager.latest_checkpoint_result
    if latest is None or _exists(latest.checkpoint.filesystem, latest.checkpoint.path):
        return False
    fs, trial_dir = latest.checkpoint.filesystem, trial.storage.trial_fs_path
    results = f"{trial_dir}/result.json"
    reported: dict[str, dict[str, Any]] = {}
    if _exists(fs, results):
        with fs.open_input_stream(results) as f:
            for line in f.read().decode("utf-8").splitlines():
                try:
                    result = json.loads(line)
                except ValueError:
                    continue  # a line cut short by the kill
                if result.get("checkpoint_dir_name"):
                    reported[result["checkpoint_dir_name"]] = result
    manager._checkpoint_results, manager._latest_checkpoint_result = [], None  # none survived: the trial starts over
    on_storage = sorted(i.base_name for i in fs.get_file_info(pyarrow.fs.FileSelector(trial_dir))
                        if i.type == pyarrow.fs.FileType.Directory and CHECKPOINT_DIR.fullmatch(i.base_name))
    for name in on_storage:  # oldest first, so the newest ends up the latest and the policy prunes as Ray would
        if name in reported:
            manager.register_checkpoint(_TrainingResult(Checkpoint(f"{trial_dir}/{name}", filesystem=fs), reported[name]))
    return True


def _newest_state(names: list[str]) -> str | None:
    states = [n for n in names if n.startswith(STATE_PREFIX) and n.endswith(".json")]
    return max(states) if states else None  # Ray restores the newest by name too


def _is_whole(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _listdir(path: str) -> list[str]:
    from pyarrow import fs as pafs

    fs, inner = storage.filesystem(path)
    return [info.base_name for info in fs.get_file_info(pafs.FileSelector(inner))]


def _staging_dir(exp_dir: str) -> str | None:
    """The recorded staging dir, when this machine still has a whole state file in it."""
    record = storage.join(exp_dir, STAGING_RECORD)
    if not storage.exists(record):
        return None
    staging = json.loads(storage.read_text(record))["staging_dir"]
    newest = _newest_state(os.listdir(staging)) if os.path.isdir(staging) else None
    if newest is None:
        return None
    with open(os.path.join(staging, newest), encoding="utf-8") as f:
        return staging if _is_whole(f.read()) else None


def prepare_resume(exp_dir: str) -> str | None:
    """Make the experiment dir hold a whole, newest experiment state before Tuner.restore.

    Returns the staging dir the state was completed from, or None when it was left as it was.
    """
    staging = _staging_dir(exp_dir)
    if staging is not None:
        # what the killed driver's next copy would have delivered: its newest state, whole
        storage.upload_dir(staging, exp_dir, skip_hidden=True)
    newest = _newest_state(_listdir(exp_dir))
    if newest is not None:
        path = storage.join(exp_dir, newest)
        if not _is_whole(storage.read_text(path)):
            raise UserError(f"--resume: {storage.redact(path)} is truncated (the driver died while Ray copied it) and no whole copy "
                            "is left in the driver's staging dir on this machine; the search cannot be resumed, rerun it with --overwrite")
    return staging
