"""Each trial's result.json, kept whole across PBT pauses and trial retries."""
from __future__ import annotations

import os
from typing import Any

from ray.tune.logger import JsonLoggerCallback


class ResultJsonLogger(JsonLoggerCallback):
    """Ray's JSON logger copies a trial's result.json back from storage whenever the trial
    (re)starts from a checkpoint. That copy is only as new as the last experiment sync, so a
    PBT pause overwrote the lines logged since then. Fetch it only when this driver has no
    copy of its own (a resumed experiment)."""

    def _restore_from_remote(self, file_name: str, trial: Any) -> None:
        if not os.path.exists(os.path.join(trial.local_path, file_name)):
            super()._restore_from_remote(file_name, trial)
