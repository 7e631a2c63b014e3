"""Ray Tune's experiment state, made safe to resume after the driver was killed.

Ray writes experiment_state-<session>.json into a staging dir on the driver's node and
copies the whole staging dir to the experiment dir file by file, in place. A driver killed
in the middle of that copy leaves a truncated state file, and Tuner.restore then quietly
starts over with a search that believes it already made its trials. The driver records
where its staging dir is; before a resume we finish the interrupted copy from there, and
refuse, naming the file, when no whole state is left anywhere.

The saved state can also lag behind the trials. A trial that reported checkpoints after the
last state save would redo those epochs from the older checkpoint the state names, or fail
when `num_to_keep` has deleted it; a trial that started after the last save trained in a dir
the state does not name, and Ray would start it over in a new one. All go on from their
newest checkpoint on storage instead, but under a scheduler that judges every result: its
state, restored from the same save, never saw the results that came with those newer
checkpoints, so the trial goes on from the checkpoint the state names (where it still exists)
and reports those epochs again, to be judged as an uninterrupted search would have judged them.
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
from typing import Any

import pyarrow.fs
from ray.tune import Callback, Checkpoint

from dltune import ray_compat, storage
from dltune.errors import UserError
from dltune.hpo.trial_dirs import TRIAL_DIR_ID, trial_id_of

STAGING_RECORD = "driver_staging.json"
STATE_PREFIX = "experiment_state-"
CALLBACK_STATES_PREFIX = "callback-states-"  # Ray's CallbackList.CKPT_FILE_TMPL
CHECKPOINT_DIR = re.compile(r"checkpoint_\d+")


class ExperimentStateGuard(Callback):
    """Records the driver's staging dir when the first trial starts, and before a resumed
    search schedules anything, points trials at checkpoints that still exist (and forgets those
    the keep policy deleted after the save, which the next pruning would fail on). With
    ``judged_results`` (a scheduler that judges every result, restored as it was saved), a
    trial goes on from the checkpoint the saved state names where it still exists, and trains
    the epochs reported after it again, so that the scheduler judges them."""

    def __init__(self, exp_dir: str, verbose: bool, judged_results: bool = False) -> None:
        self.exp_dir = exp_dir
        self.verbose = verbose
        self.judged_results = judged_results
        self.recorded = False
        self.checked = False

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if not self.checked:
            for trial in trials:
                ray_compat.drop_missing_checkpoints(trial)
                recorded = trial.checkpoint
                dropped = redo_after_recorded_checkpoint(trial) if self.judged_results else []
                if dropped:
                    self._say(trial, f"{', '.join(dropped)} came after the saved state and went, its epochs to be trained and judged again")
                elif resume_from_newest_checkpoint(trial):
                    self._say(trial, f"the saved state names {_name(recorded)}, not its newest checkpoint")
                elif adopt_unrecorded_trial_dir(trial):
                    self._say(trial, f"dir {trial.relative_logdir} was not in the saved state")
            self.checked = True

    def _say(self, trial: Any, why: str) -> None:
        if self.verbose:
            print(f"resume: trial {trial.trial_id}: {why}; it goes on from {_name(trial.checkpoint) if trial.checkpoint else 'the start'}", flush=True)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if not self.recorded:
            record = {"staging_dir": ray_compat.staging_dir(trial)}
            storage.write_text(storage.join(self.exp_dir, STAGING_RECORD), json.dumps(record) + "\n")
            self.recorded = True


def _name(checkpoint: Checkpoint) -> str:
    return checkpoint.path.rsplit("/", 1)[-1]


def _checkpoints_on_storage(trial: Any) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The trial's checkpoint dir names on storage, oldest first, and the results it reported them with."""
    fs, trial_dir = trial.storage.storage_filesystem, trial.storage.trial_fs_path
    on_storage = sorted(i.base_name for i in fs.get_file_info(pyarrow.fs.FileSelector(trial_dir, allow_not_found=True))
                        if i.type == pyarrow.fs.FileType.Directory and CHECKPOINT_DIR.fullmatch(i.base_name))
    reported = {result["checkpoint_dir_name"]: result for result in ray_compat.stored_results(trial) if result.get("checkpoint_dir_name")}
    return on_storage, reported


def _rebuild_checkpoints(trial: Any) -> None:
    """The trial's checkpoint book-keeping from its checkpoints on storage, each registered with
    the result it was reported with, oldest first: the newest ends up the latest and the keep
    policy prunes as Ray would have. Without one, the trial starts over."""
    fs, trial_dir = trial.storage.storage_filesystem, trial.storage.trial_fs_path
    on_storage, reported = _checkpoints_on_storage(trial)
    ray_compat.forget_checkpoints(trial)
    for name in on_storage:
        if name in reported:
            ray_compat.register_checkpoint(trial, Checkpoint(f"{trial_dir}/{name}", filesystem=fs), reported[name])
    if on_storage:  # the trial's next checkpoint must not land on one of these
        ray_compat.number_checkpoints_after(trial, int(on_storage[-1].split("_")[1]))


def _state_lags_behind(trial: Any, recorded: Checkpoint) -> bool:
    """Whether the checkpoint the saved state names is gone, or older than one the trial reported since."""
    if not storage.exists_on(recorded.filesystem, recorded.path):
        return True
    name = _name(recorded)
    if not CHECKPOINT_DIR.fullmatch(name):
        return False  # a PBT exploit's copy of a donor's checkpoint: the state is as new as the exploit
    on_storage, reported = _checkpoints_on_storage(trial)
    return any(other > name and other in reported for other in on_storage)  # zero-padded indices order as strings


def redo_after_recorded_checkpoint(trial: Any) -> list[str]:
    """Where the checkpoint the saved state names still exists, delete the trial's checkpoints
    after it (the scheduler restored with that state never judged the results they came with):
    the trial goes on from the named one and reports those epochs again. Returns the deleted
    names; none where there were none, or the named checkpoint is gone or a PBT exploit's copy."""
    recorded = trial.checkpoint
    if recorded is None or not storage.exists_on(recorded.filesystem, recorded.path) or not CHECKPOINT_DIR.fullmatch(_name(recorded)):
        return []
    later = [name for name in _checkpoints_on_storage(trial)[0] if name > _name(recorded)]  # zero-padded indices order as strings
    for name in later:
        recorded.filesystem.delete_dir(f"{trial.storage.trial_fs_path}/{name}")
    return later


def resume_from_newest_checkpoint(trial: Any) -> bool:
    """The saved state lags behind the trial's checkpoints on storage: rebuild from them, so that
    the trial neither fails on a deleted checkpoint nor reports epochs twice. Returns whether it had to."""
    recorded = trial.checkpoint
    if recorded is None or not _state_lags_behind(trial, recorded):
        return False
    _rebuild_checkpoints(trial)
    return True


def adopt_unrecorded_trial_dir(trial: Any) -> bool:
    """A trial that started after the last state save trained in a dir the state does not name,
    and the restored trial was given a new one. Point it back at the dir it trained in, so it
    goes on from its checkpoints there instead of starting over beside them."""
    if trial.status == trial.TERMINATED or trial.checkpoint is not None:
        return False
    fs, exp = trial.storage.storage_filesystem, trial.storage.experiment_fs_path
    prefix = f"{trial.trainable_name}_{trial.trial_id}_"
    earlier = [i.base_name for i in fs.get_file_info(pyarrow.fs.FileSelector(exp))
               if i.type == pyarrow.fs.FileType.Directory and i.base_name.startswith(prefix) and i.base_name != trial.relative_logdir]
    if len(earlier) != 1:
        return False
    with contextlib.suppress(OSError):
        os.rmdir(trial.local_path)  # the empty staging dir made for the new name
    ray_compat.move_trial_dir(trial, earlier[0])
    _rebuild_checkpoints(trial)
    return True


def remove_abandoned_trial_dirs(exp_dir: str, trial_paths: list[str]) -> list[str]:
    """After a resumed search, keep one dir and one TensorBoard run per trial of ``trial_paths``.

    A trial the killed driver had started after its last saved state either
    ran again under its id in a new dir (its first dir goes) or was never
    heard of again, its config tried afresh under a new id (its dir and its
    TensorBoard run go). Returns the removed dir names."""
    kept = {trial_id_of(path): path.rstrip("/").rsplit("/", 1)[-1] for path in trial_paths}
    abandoned = [name for name in storage.list_names(exp_dir) if TRIAL_DIR_ID.match(name) and kept.get(trial_id_of(name)) != name]
    for name in abandoned:
        storage.delete(storage.join(exp_dir, name))
        run = storage.join(exp_dir, "tensorboard", trial_id_of(name))
        if trial_id_of(name) not in kept and storage.exists(run):
            storage.delete(run)
    return abandoned


def _newest_state(names: list[str], prefix: str = STATE_PREFIX, suffix: str = ".json") -> str | None:
    states = [n for n in names if n.startswith(prefix) and n.endswith(suffix)]
    return max(states) if states else None  # Ray restores the newest by name too


def _is_whole(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _is_whole_pickle(data: bytes) -> bool:
    try:
        pickle.loads(data)  # the callbacks' states: dicts of numbers and bytes, and dltune's own classes
    except (pickle.UnpicklingError, EOFError, ValueError):
        return False
    return True


def _refuse_truncated(path: str) -> None:
    raise UserError(f"--resume: {storage.redact(path)} is truncated (the driver died while Ray copied it) and no whole copy "
                    "is left in the driver's staging dir on this machine; the search cannot be resumed, rerun it with --overwrite")


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
    names = storage.list_names(exp_dir)
    # The experiment state, and the callbacks' (the scheduler's, the search's clock and spend): Ray
    # writes each atomically in staging, then copies it here file by file.
    state, callbacks = _newest_state(names), _newest_state(names, CALLBACK_STATES_PREFIX, ".pkl")
    if state is not None and not _is_whole(storage.read_text(storage.join(exp_dir, state))):
        _refuse_truncated(storage.join(exp_dir, state))
    if callbacks is not None and not _is_whole_pickle(storage.read_bytes(storage.join(exp_dir, callbacks))):
        _refuse_truncated(storage.join(exp_dir, callbacks))
    return staging
