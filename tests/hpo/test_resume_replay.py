"""A resumed ASHA or HyperBand search makes the decisions the full history does: its trials'
results replayed offline through the scheduler agree with what it did, killed or not. The killed
HyperBand search runs BOHB, whose restore test_resume_state.py's other searches leave out. ASHA's
driver is killed in the middle of saving the scheduler's state: its resume starts from the last
whole save before the experiment state's step, and reads the results in between back."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from asha_replay import replay_asha, replay_hyperband
from conftest import resumed_here, trial_results
from killed_search import HYPERBAND, RESTORED, SIMULATED, killed_and_resumed, killed_while_saving_the_scheduler, one_of_each_trial
from dltune import cli

ASHA = ["tune.scheduler=asha", "tune.grace_period=1", "tune.reduction_factor=3", "tune.num_samples=16"]

REPLAYED = {  # the search's own arguments, its trials, (reports, finished trials) before the kill, the scheduler's name, the replay
    # ASHA: killed at the first save of its state once six trials have reported
    "asha": (ASHA, 16, (6, 0), "AsyncHyperBandScheduler", lambda exp: replay_asha(exp, "loss", "min", max_t=9, grace_period=1, reduction_factor=3)),
    "hyperband": (HYPERBAND, 17, None, "FullFidelityHyperBand", lambda exp: replay_hyperband(exp, "loss", "min", max_t=9, reduction_factor=3)),
    # BOHB's searcher creates each trial as a slot frees, so its brackets fill one trial at a time.
    # Killed once 11 trials have reported and 3 reached epoch 9: the bracket of 9 trials, filled and
    # halved first, has ended with its one trial at epoch 9 (BOHB learnt from it) and the next ones
    # hold trials paused at a rung
    "hyperband-bohb": ([*HYPERBAND, "tune.searcher=bohb"], 17, (11, 3), "FullFidelityHyperBandForBOHB",
                       lambda exp: replay_hyperband(exp, "loss", "min", max_t=9, reduction_factor=3, for_bohb=True)),
}


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.parametrize(("scheduler", "killed"), [("asha", False), ("asha", True), ("hyperband", False), ("hyperband-bohb", False), ("hyperband-bohb", True)],
                         ids=["asha-uninterrupted", "asha-killed", "hyperband-uninterrupted", "hyperband-bohb-uninterrupted", "hyperband-bohb-killed"])
def test_scheduler_decisions_match_the_replay_of_the_full_history(request: pytest.FixtureRequest, tmp_path: Path, scheduler: str, killed: bool) -> None:
    own, trials, kill_at, name, replayed = REPLAYED[scheduler]
    args = [*SIMULATED, *own, f"output.dir={tmp_path}"]
    exp = tmp_path / "k"
    if killed and scheduler == "asha":
        reported, _ = kill_at
        killed_while_saving_the_scheduler(args, exp, tmp_path / "hook", request.getfixturevalue("user_root"), reported)
        staging = json.loads((exp / "driver_staging.json").read_text())["staging_dir"]
        assert list(Path(staging).glob(".*-tmp-callback-states-*.pkl")), "the kill came before the temp file was whole"
        at_kill = trial_results(exp)
        resumed = resumed_here(args, request)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        said = re.search(rf"{name} restored as it was at step (\d+), the last whole save before the experiment state's step (\d+) .*: the rung "
                         "results reported in between were read back", resumed.stderr)
        assert said and int(said[1]) < int(said[2]), (resumed.stdout[-2000:], resumed.stderr[-2000:])
        one_of_each_trial(exp, trials)
        # one trial at a time: all but the last one started had finished, and none ran again
        newest = max(at_kill)  # Ray numbers trials as it makes them (<run>_00000, ...); a report's timestamp has whole seconds
        assert {tid: len(trial_results(exp)[tid]) for tid in at_kill if tid != newest} == {tid: len(h) for tid, h in at_kill.items() if tid != newest}
    elif killed:
        reported, finished = kill_at
        for attempt in range(2):
            # A kill inside a save (after the experiment state, before the scheduler's) is a legitimate moment whose
            # resume puts back the save before, without the results in between (test_resume_state.py checks that):
            # the replay cannot match it, so such a kill gets one more search, in a dir of its own.
            out = tmp_path / f"attempt{attempt}"
            args, exp = [*SIMULATED, *own, f"output.dir={out}"], out / "k"
            resumed, _ = killed_and_resumed(args, exp, request, reported=reported, finished=finished)
            if "the driver died while saving it" not in resumed.stderr:
                break
        assert f"{name} {RESTORED}" in resumed.stdout and "warning: resume" not in resumed.stderr, resumed.stderr[-2000:]
        one_of_each_trial(exp, trials)
        # the searcher was checked against the trials that had finished (searcher_history's unit tests make one whole)
        assert re.search(r"resume: RecordingBOHB knows all [1-9]\d* trials that had finished", resumed.stdout), resumed.stdout[-2000:]
    else:  # nothing to kill mid-search: epochs need take no time, and the search runs in this process on the shared Ray
        request.getfixturevalue("ray_cluster")
        assert cli.main([*args, "params={sleep: 0}", "--quiet"]) == 0
    replay = replayed(exp)
    assert replay.past_stop == [] and replay.wrongly_stopped == [], replay
    histories = trial_results(exp)
    assert len(histories) == trials and replay.decisions >= 16
    assert any(max(r["epoch"] for r in h) < 9 for h in histories.values()), f"{scheduler} stopped nothing: the replay judged nothing"
