"""Trial ids from Ray's trial dir names (a light module: the report reads them without Ray or torch)."""
from __future__ import annotations

import re

# Ray names a trial's dir <trainable>_<trial id>_<index>_<params>_<date>; the id is <5 hex>_<5 digits>
# for trials of Ray's own variant generator and 8 hex digits for trials of a searcher (Optuna, BOHB, ...).
TRIAL_DIR_ID = re.compile(r"[A-Za-z_]+?_([0-9a-f]{5}_\d{5}|[0-9a-f]{8})_\d+(?:_|$)")


def trial_id_of(trial_path: str) -> str:
    """The trial id from Ray's trial directory name.

    A result's metrics can come from a checkpoint another trial wrote (PBT), so
    their trial_id field is not trusted.
    """
    name = trial_path.rstrip("/").rsplit("/", 1)[-1]
    match = TRIAL_DIR_ID.match(name)
    return match.group(1) if match else name
