"""Ray Tune's experiment state, made safe to resume after the driver was killed.

Ray writes experiment_state-<session>.json into a staging dir on the driver's node and
copies the whole staging dir to the experiment dir file by file, in place. A driver killed
in the middle of that copy leaves a truncated state file, and Tuner.restore then quietly
starts over with a search that believes it already made its trials. The driver records
where its staging dir is; before a resume we finish the interrupted copy from there, and
refuse, naming the file, when no whole state is left anywhere.
"""
from __future__ import annotations

import json
import os
from typing import Any

from ray.tune import Callback

from dltune import storage
from dltune.errors import UserError

STAGING_RECORD = "driver_staging.json"
STATE_PREFIX = "experiment_state-"


class StagingRecorder(Callback):
    """Writes the driver's staging dir into the experiment dir when the first trial starts."""

    def __init__(self, exp_dir: str) -> None:
        self.exp_dir = exp_dir
        self.recorded = False

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if not self.recorded:
            record = {"staging_dir": trial.storage.experiment_driver_staging_path}
            storage.write_text(storage.join(self.exp_dir, STAGING_RECORD), json.dumps(record) + "\n")
            self.recorded = True


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
