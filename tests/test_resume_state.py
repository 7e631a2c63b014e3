"""A search whose driver was killed resumes with its scheduler as it was: a resumed ASHA or
HyperBand search makes the decisions the full history does, and every stateful scheduler is put
back at the step of the experiment state it resumes from."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from asha_replay import replay_asha, replay_hyperband
from conftest import kill_search_when, run_cli, trial_results

# one trial at a time, each epoch half a second: the order results reach the scheduler is the trials' order
SIMULATED = ["tune", "configs/quickstart_tune.yaml", "train.fn=byo_user.train:simulated", "tune.space={params.x: {uniform: [-5.0, 5.0]}}",
             "tune.metric=loss", "tune.mode=min", "tune.searcher=random", "train.epochs=9", "params={sleep: 0.5}", "tune.max_concurrent_trials=1",
             "tune.local_cpus=2", "output.experiment=k"]
ASHA = ["tune.scheduler=asha", "tune.grace_period=1", "tune.reduction_factor=3", "tune.num_samples=16"]
RESTORED = "restored as it was at the last saved step"


def _killed_and_resumed(args: list[str], exp: Path, user_root: Path, reported: int, finished: int = 0) -> subprocess.CompletedProcess:
    """Run the search, SIGKILL its driver once ``reported`` trials have results and ``finished`` of
    them have reported their last epoch (9), resume it."""
    def ready() -> bool:
        histories = trial_results(exp) if exp.exists() else {}
        return len(histories) >= reported and sum(h[-1]["epoch"] >= 9 for h in histories.values()) >= finished

    kill_search_when(args, ready, user_root)
    assert not (exp / "summary.json").exists()
    resumed = run_cli(*args, "--resume", env={"RAY_ADDRESS": "", "PYTHONPATH": str(user_root), "TUNE_GLOBAL_CHECKPOINT_S": "1"})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return resumed


# One band: brackets of 3, 5 and 9 trials. All created at once, as dltune's HyperBand is given them
# unless a limit is set (trials created one by one would each meet a rung alone), two running at a time.
HYPERBAND = ["tune.scheduler=hyperband", "tune.reduction_factor=3", "tune.num_samples=17", "tune.max_concurrent_trials=auto"]
REPLAYED = {  # the search's own arguments, its trials, the reports before the kill, the scheduler's name, the replay
    # ASHA: killed once six trials have reported
    "asha": (ASHA, 16, 6, "AsyncHyperBandScheduler", lambda exp: replay_asha(exp, "loss", "min", max_t=9, grace_period=1, reduction_factor=3)),
    # HyperBand: once the 5-trial bracket has halved and the 9-trial one has trials paused at its first rung
    "hyperband": (HYPERBAND, 17, 11, "FullFidelityHyperBand", lambda exp: replay_hyperband(exp, "loss", "min", max_t=9, reduction_factor=3)),
}


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.parametrize("killed", [False, True], ids=["uninterrupted", "killed"])
@pytest.mark.parametrize("scheduler", sorted(REPLAYED))
def test_scheduler_decisions_match_the_replay_of_the_full_history(tmp_path: Path, user_root: Path, scheduler: str, killed: bool) -> None:
    own, trials, reported, name, replayed = REPLAYED[scheduler]
    args = [*SIMULATED, *own, f"output.dir={tmp_path}"]
    exp = tmp_path / "k"
    if killed:
        resumed = _killed_and_resumed(args, exp, user_root, reported=reported)
        assert f"{name} {RESTORED}" in resumed.stdout and "warning: resume" not in resumed.stderr, resumed.stderr[-2000:]
    else:
        done = run_cli(*args, env={"RAY_ADDRESS": "", "PYTHONPATH": str(user_root)})
        assert done.returncode == 0, done.stderr[-3000:]
    replay = replayed(exp)
    assert replay.past_stop == [] and replay.wrongly_stopped == [], replay
    histories = trial_results(exp)
    assert len(histories) == trials and replay.decisions >= 16
    assert any(max(r["epoch"] for r in h) < 9 for h in histories.values()), f"{scheduler} stopped nothing: the replay judged nothing"


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.parametrize(("scheduler", "name", "said", "searcher"), [
    (["tune.scheduler=median", "tune.grace_period=1", "tune.num_samples=8", "tune.searcher=optuna"], "MedianStoppingRule", RESTORED,
     "FidelityAwareOptunaSearch"),
    (["tune.scheduler=median", "tune.grace_period=1", "tune.num_samples=8", "tune.searcher=hyperopt"], "MedianStoppingRule", RESTORED,
     "HyperOptSearch"),
    ([*HYPERBAND, "tune.searcher=bohb"], "FullFidelityHyperBandForBOHB", RESTORED, "RecordingBOHB"),
    (["tune.scheduler=pbt", "tune.perturbation_interval=2", "tune.num_samples=4", "tune.max_concurrent_trials=2"], "SafePBT",
     "population starts afresh", None),
], ids=["median-optuna", "median-hyperopt", "hyperband-bohb", "pbt"])
def test_a_resumed_search_puts_its_scheduler_back_as_it_was_saved(tmp_path: Path, user_root: Path, scheduler: list[str], name: str, said: str,
                                                                  searcher: str | None) -> None:
    exp = tmp_path / "k"
    # the searcher check needs a trial that had finished: under HyperBand three reports can all be paused at a rung
    resumed = _killed_and_resumed([*SIMULATED, *scheduler, f"output.dir={tmp_path}"], exp, user_root, reported=3, finished=int(searcher is not None))
    if said == RESTORED:
        assert f"{name} {RESTORED}" in resumed.stdout and "warning: resume" not in resumed.stderr, (resumed.stdout[-2000:], resumed.stderr[-2000:])
        # the searcher was checked against the trials that had finished (searcher_history's unit tests make one whole)
        assert re.search(rf"resume: {searcher} knows all [1-9]\d* trials that had finished", resumed.stdout), resumed.stdout[-2000:]
    else:  # not restored, and the resume says so
        assert f"warning: resume: {name}'s {said}" in resumed.stderr and RESTORED not in resumed.stdout, resumed.stderr[-2000:]


def _hyperband_with_trials(ids: list[str]) -> tuple[object, list]:
    from ray.tune.experiment import Trial

    from dltune.ray_compat.schedulers import FullFidelityHyperBand

    scheduler = FullFidelityHyperBand(time_attr="epoch", metric="loss", mode="min", max_t=9, reduction_factor=3)
    trials = [Trial("t", stub=True, trial_id=i) for i in ids]
    for trial in trials:
        scheduler.on_trial_add(None, trial)
    return scheduler, trials


def _brackets(scheduler: object) -> list:
    """Each bracket's trial ids, first budget and halvings, and each trial's bracket, as ids."""
    brackets = [b for band in scheduler._hyperbands for b in band]
    return [[([t.trial_id for t in b._all_trials], b._r, b._halves) for b in brackets],
            {t.trial_id: (brackets.index(b), band) for t, (b, band) in scheduler._trial_info.items()}]


def test_a_snapshot_comes_back_onto_the_resumed_trials_and_scheduler() -> None:
    from dltune.ray_compat.scheduler_state import restore, snapshot

    ids = [f"a_{i:05d}" for i in range(7)]
    saved, _ = _hyperband_with_trials(ids)
    fresh, resumed = _hyperband_with_trials(list(reversed(ids)))  # re-added in another order, as Tune does by last result time
    kind, data = snapshot(saved)
    restore(fresh, kind, data, resumed)
    assert _brackets(fresh) == _brackets(saved) != _brackets(_hyperband_with_trials(list(reversed(ids)))[0])
    by_id = {t.trial_id: t for t in resumed}
    assert all(trial is by_id[trial.trial_id] for trial in fresh._trial_info)  # the resumed Trial objects, not copies
    assert fresh._get_r0(1) == 3 and fresh._get_r0.__closure__[0].cell_contents is fresh  # HyperBand's budget function: the resumed scheduler's


def test_a_scheduler_that_cannot_be_saved_leaves_the_search_running_and_says_so(capsys: pytest.CaptureFixture) -> None:
    import threading

    from ray.tune.schedulers import FIFOScheduler

    from dltune.ray_compat.scheduler_state import SchedulerState

    class Locked(FIFOScheduler):
        def __init__(self) -> None:
            super().__init__()
            self.lock = threading.Lock()

    keeper = SchedulerState(Locked(), verbose=False)
    assert keeper.get_state() == {"snapshots": []} and keeper.get_state() == {"snapshots": []}
    assert capsys.readouterr().err.count("Locked's state cannot be saved") == 1


def test_only_the_snapshot_of_the_experiment_states_step_is_put_back(capsys: pytest.CaptureFixture) -> None:
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import MedianStoppingRule

    from dltune.ray_compat.scheduler_state import SchedulerState

    trials = [Trial("t", stub=True, trial_id=f"m_{i:05d}") for i in range(3)]
    keeper = SchedulerState(MedianStoppingRule(time_attr="epoch", metric="loss", mode="min"), verbose=True)
    keeper.on_step_begin(5, trials)
    keeper.scheduler._stopped_trials.add(trials[0])
    saved = keeper.get_state()
    for step, restored in ((6, False), (5, True)):  # step 6: Ray saved a newer experiment state, then died before this one
        resumed = SchedulerState(MedianStoppingRule(time_attr="epoch", metric="loss", mode="min"), verbose=True)
        resumed.set_state(saved)
        resumed.on_step_begin(step, trials)
        assert (trials[0] in resumed.scheduler._stopped_trials) is restored
        out = capsys.readouterr()
        assert ("restored as it was" in out.out) is restored and ("matches the experiment state (step 6)" in out.err) is not restored


def test_asha_takes_back_a_trial_it_dropped_when_it_failed() -> None:
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import ASHAScheduler

    from dltune.ray_compat.scheduler_state import readd_forgotten, restore, snapshot

    trials = [Trial("t", stub=True, trial_id=f"e_{i:05d}") for i in range(2)]
    saved = ASHAScheduler(time_attr="epoch", metric="loss", mode="min", max_t=9)
    for trial in trials:
        saved.on_trial_add(None, trial)
    saved.on_trial_remove(None, trials[1])  # what an error that used up its retries does
    fresh = ASHAScheduler(time_attr="epoch", metric="loss", mode="min", max_t=9)
    restore(fresh, *snapshot(saved), trials)
    readd_forgotten(fresh, trials)  # Tune resumes the errored trial: it reports again
    assert fresh.on_trial_result(None, trials[1], {"epoch": 1, "loss": 0.5}) == "CONTINUE"
