"""The Ray checkpoint codec: the state itself, or the name of the experiment dir's copy."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dltune.errors import UserError
from dltune.launch.ray_checkpoint import POINTER_FILE, checkpoint_dir, load_ray_checkpoint
from dltune.train import checkpoint


def test_a_checkpoint_holds_the_state_or_names_the_experiments_copy(tmp_path: Path) -> None:
    from ray.train import Checkpoint

    state = checkpoint.pack(3, {"w": torch.arange(4.0)})
    with checkpoint_dir(state) as tmp:
        assert torch.equal(load_ray_checkpoint(Checkpoint.from_directory(tmp))["state"]["w"], torch.arange(4.0))

    exp = tmp_path / "exp"
    checkpoint.save(state, str(exp / "checkpoints" / "epoch_0003.pt"))
    with checkpoint_dir(state, kept_as="checkpoints/epoch_0003.pt") as tmp:
        assert [p.name for p in Path(tmp).iterdir()] == [POINTER_FILE]  # a name, not a second copy
        named = Checkpoint.from_directory(tmp)
        assert load_ray_checkpoint(named, exp_dir=str(exp))["epoch"] == 3
        (exp / "checkpoints" / "epoch_0003.pt").unlink()
        with pytest.raises(UserError, match=r"resume: Ray Train's latest checkpoint is .*epoch_0003\.pt, which is gone"):
            load_ray_checkpoint(named, exp_dir=str(exp))


def test_staged_checkpoints_of_ended_processes_are_removed_once_an_hour_old(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import time

    from dltune.launch.ray_checkpoint import PREFIX, remove_orphans

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    dead = int(ended.stdout)
    made = {name: tmp_path / f"{PREFIX}{name}" for name in (f"{dead}-old", f"{dead}-new", f"{os.getpid()}-old", "x-old")}
    for name, path in made.items():
        (path).mkdir()
        (path / "state.pt").write_bytes(b"weights")
        if name.endswith("old"):
            os.utime(path, (time.time() - 7200, time.time() - 7200))
    (tmp_path / "unrelated-99999999-old").mkdir()
    # only the dead process's hour-old one goes: not a fresh one (another pid namespace may own it),
    # not this live process's, not a name without a pid, not another program's
    assert remove_orphans(str(tmp_path)) == [f"{PREFIX}{dead}-old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{PREFIX}{dead}-new", f"{PREFIX}{os.getpid()}-old", f"{PREFIX}x-old",
                                                                 "unrelated-99999999-old"])
