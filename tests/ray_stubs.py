"""Real Ray Tune trials outside a running search, for tests. Ray has no public way to make one
with storage; the private class it takes (``StorageContext``) is named here alone, and the
trial's checkpoint book-keeping goes through dltune.ray_compat as dltune's own code does."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def stub_trial(storage_path: Path, experiment: str, config: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """A Tune trial (not running) with its dir under ``storage_path/experiment``; ``kwargs`` go to Trial."""
    from ray.train._internal.storage import StorageContext
    from ray.tune.experiment import Trial

    trial = Trial("fn", config=config or {}, storage=StorageContext(str(storage_path), experiment), stub=True, **kwargs)
    trial.init_local_path()
    return trial
