"""A search whose driver is SIGKILLed mid-way and then resumed, for the resume tests: the search
runs a user objective whose epochs take simulated time, one trial at a time."""
from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, kill_search_when, resumed_here, trial_results

# one trial at a time, each epoch half a second: the order results reach the scheduler is the trials' order
SIMULATED = ["tune", "configs/quickstart_tune.yaml", "train.fn=byo_user.train:simulated", "tune.space={params.x: {uniform: [-5.0, 5.0]}}",
             "tune.metric=loss", "tune.mode=min", "tune.searcher=random", "train.epochs=9", "params={sleep: 0.5}", "tune.max_concurrent_trials=1",
             "tune.local_cpus=2", "output.experiment=k"]

# One band: brackets of 3, 5 and 9 trials. All created at once, as dltune's HyperBand is given them
# unless a limit is set (trials created one by one would each meet a rung alone), two running at a time.
HYPERBAND = ["tune.scheduler=hyperband", "tune.reduction_factor=3", "tune.num_samples=17", "tune.max_concurrent_trials=auto"]

RESTORED = "restored as it was at the last saved step"


def assert_scheduler_restored(resumed: subprocess.CompletedProcess, name: str) -> None:
    """The resume put the scheduler ``name`` back, said so, and warned of nothing else. A kill at
    any moment can land inside a save, after the experiment state and before the scheduler's state
    is renamed into place: the last whole save before it comes back then, with the one warning
    line that says so (test_resume_state.py checks that choice, test_resume_replay.py its effect)."""
    fallback = re.compile(rf"warning: resume: {name} restored as it was at step \d+, the last whole save before the experiment state's step")
    warned = [line for line in resumed.stderr.splitlines() if "warning: resume" in line]
    restored = f"{name} {RESTORED}" in resumed.stdout or (len(warned) == 1 and fallback.search(warned[0]))
    assert restored and all(fallback.search(line) for line in warned), (resumed.stdout[-2000:], resumed.stderr[-2000:])


def killed_and_resumed(args: list[str], exp: Path, request: pytest.FixtureRequest, reported: int, finished: int = 0) -> tuple[subprocess.CompletedProcess, dict]:
    """Run the search, SIGKILL its driver once ``reported`` trials have results and ``finished`` of
    them have reported their last epoch (9), resume it in this process. Returns the resumed search
    and each trial's results as they stood when the kill was decided (two seconds before it)."""
    at_kill: dict[str, list[dict]] = {}

    def ready() -> bool:
        at_kill.clear()
        at_kill.update(trial_results(exp) if exp.exists() else {})
        return len(at_kill) >= reported and sum(h[-1]["epoch"] >= 9 for h in at_kill.values()) >= finished

    kill_search_when(args, ready, request.getfixturevalue("user_root"))
    assert not (exp / "summary.json").exists()
    resumed = resumed_here(args, request)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return resumed, at_kill


# Put on the driver's path ahead of everything: once EXP has REPORTED trials with results, the driver
# and the Ray it started are SIGKILLed at the next rename of a callback state's temp file into place,
# the temp file written and the experiment state of its step saved before it.
KILL_AT_SCHEDULER_SAVE = """
import os, signal, sys

def _ready(exp, reported):
    try:
        return sum(os.path.getsize(os.path.join(exp, d, "result.json")) > 0 for d in os.listdir(exp)
                   if os.path.isfile(os.path.join(exp, d, "result.json"))) >= reported
    except OSError:
        return False

def _hook(event, args):
    if event == "os.rename" and "-tmp-callback-states-" in os.fspath(args[0]) and _ready(*_WHEN):
        os.killpg(os.getpgrp(), signal.SIGKILL)

if os.environ.get("KILL_AT_SCHEDULER_SAVE"):
    _WHEN = (os.environ["KILL_AT_SCHEDULER_SAVE"], int(os.environ["KILL_AFTER_REPORTED"]))
    sys.addaudithook(_hook)
"""


def killed_while_saving_the_scheduler(args: list[str], exp: Path, hook_dir: Path, user_root: Path, reported: int) -> None:
    """Run the search as a cold CLI on a Ray of its own and SIGKILL both once ``reported`` trials
    have results, at the next save of the callbacks' (the scheduler's) state: its temp file whole,
    not yet renamed into place."""
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(KILL_AT_SCHEDULER_SAVE)
    env = dict(os.environ, TUNE_GLOBAL_CHECKPOINT_S="1", RAY_ADDRESS="", OMP_NUM_THREADS="1", PYTHONPATH=f"{hook_dir}{os.pathsep}{user_root}",
               KILL_AT_SCHEDULER_SAVE=str(exp), KILL_AFTER_REPORTED=str(reported))
    killed = subprocess.run([sys.executable, "-m", "dltune", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                            start_new_session=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]


def one_of_each_trial(exp: Path, trials: int) -> None:
    """results.csv, the trial dirs, the TensorBoard runs and the report each hold every trial once,
    whatever the kill interrupted, and a trial's TensorBoard run shows each epoch once."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from dltune.report.experiment import load

    with open(exp / "results.csv", newline="") as f:
        ids = sorted(row["trial_id"] for row in csv.DictReader(f))
    histories = trial_results(exp)
    assert len(ids) == len(set(ids)) == trials and sorted(histories) == ids
    assert sorted(p.name for p in (exp / "tensorboard").iterdir()) == ids
    assert sorted(t.trial_id for t in load(str(exp)).trials) == ids and f"Learning curves ({trials} trials)" in (exp / "report.html").read_text()
    for run in (exp / "tensorboard").iterdir():
        acc = EventAccumulator(str(run))
        acc.Reload()
        steps = [e.step for e in acc.Scalars("loss")]
        assert len(steps) == len(set(steps)) and steps[-1] == histories[run.name][-1]["epoch"], (run.name, steps)

