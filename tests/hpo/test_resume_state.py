"""A search whose driver was killed resumes with its scheduler as it was: every stateful scheduler
is put back at the step of the experiment state it resumes from (test_resume_replay.py checks
that ASHA and HyperBand then decide as the full history would, ASHA's after a kill in the middle
of saving its state)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from conftest import trial_results
from killed_search import SIMULATED, assert_scheduler_restored, killed_and_resumed


@pytest.mark.slow
@pytest.mark.ray
# A searcher's restore is checked end to end for SMAC here, for Optuna with the median rule in
# test_budget.py's resumed search, for BOHB with HyperBand in test_resume_replay.py's; HyperOpt's
# and BlendSearch's save and restore in test_searcher_history.py.
@pytest.mark.parametrize(("scheduler", "name", "searcher", "finished"), [
    (["tune.scheduler=pbt", "tune.perturbation_interval=2", "tune.num_samples=4", "tune.max_concurrent_trials=2"], "SafePBT", None, 0),
    # SMAC's first bracket: 1-epoch trials first, each stopped (finished) at once
    (["tune.searcher=smac", "tune.scheduler=smac_hyperband", "tune.grace_period=1", "tune.reduction_factor=3", "tune.num_samples=13"], "SmacBudgets", "SmacSearch", 0),
], ids=["pbt", "smac"])
def test_a_resumed_search_puts_its_scheduler_back_as_it_was_saved(request: pytest.FixtureRequest, tmp_path: Path, scheduler: list[str], name: str,
                                                                  searcher: str | None, finished: int) -> None:
    exp = tmp_path / "k"
    resumed, _ = killed_and_resumed([*SIMULATED, *scheduler, f"output.dir={tmp_path}"], exp, request, reported=3, finished=finished)
    assert_scheduler_restored(resumed, name)
    assert "Error handling checkpoint" not in (exp / "ray.log").read_text()  # no pruning of a checkpoint deleted before the kill
    if searcher:  # the searcher was checked against the trials that had finished (searcher_history's unit tests make one whole)
        assert re.search(rf"resume: {searcher} knows all [1-9]\d* trials that had finished", resumed.stdout), resumed.stdout[-2000:]
    if name == "SafePBT":  # PBT stops no trial: each trains to the last epoch
        assert all(h[-1]["epoch"] == 9 for h in trial_results(exp).values())


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


def test_the_snapshot_of_the_experiment_states_step_is_put_back_or_the_last_whole_one_before_it(capsys: pytest.CaptureFixture) -> None:
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import MedianStoppingRule

    from dltune.ray_compat.scheduler_state import RESTORED, SchedulerState

    trials = [Trial("t", stub=True, trial_id=f"m_{i:05d}") for i in range(3)]
    keeper = SchedulerState(MedianStoppingRule(time_attr="epoch", metric="loss", mode="min"), verbose=True)
    keeper.on_step_begin(5, trials)
    keeper.scheduler._stopped_trials.add(trials[0])
    saved = keeper.get_state()
    # 5: its own step; 6: Ray saved a newer experiment state, then died before renaming this one into place;
    # 4: a copy carried this state but not the experiment state saved with it
    for step, restored, said in ((5, True, RESTORED), (6, True, "restored as it was at step 5, the last whole save before the experiment state's step 6"),
                                 (4, False, "no saved state of MedianStoppingRule matches the experiment state (step 4) or precedes it")):
        resumed = SchedulerState(MedianStoppingRule(time_attr="epoch", metric="loss", mode="min"), verbose=True)
        resumed.set_state(saved)
        resumed.on_step_begin(step, trials)
        assert (trials[0] in resumed.scheduler._stopped_trials) is restored
        out = capsys.readouterr()
        assert said in (out.out if said == RESTORED else out.err), out


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


class _Controller:
    """What PBT asks of Tune's controller while it judges results: the trials, and a save (a dir
    under ``root``) or a pause."""

    search_alg = None

    def __init__(self, trials: list, root: Path) -> None:
        self.trials, self.root = trials, root

    def get_trials(self) -> list:
        return self.trials

    get_live_trials = get_trials

    def _schedule_trial_save(self, trial: object, result: dict) -> object:
        from ray.tune import Checkpoint

        path = self.root / trial.trial_id / str(result["epoch"])
        path.mkdir(parents=True, exist_ok=True)
        return Checkpoint(str(path))

    def pause_trial(self, trial: object, should_checkpoint: bool = True) -> None:
        trial.status = trial.PAUSED


def _population(ids: list[str], epochs: int, root: Path, kind: str = "pbt") -> tuple[object, list]:
    """PBT (or PB2) over four trials, each having reported ``epochs`` epochs, the first the worst."""
    import random

    import numpy as np
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.schedulers.pb2 import PB2

    random.seed(0)
    np.random.seed(0)
    common = {"time_attr": "epoch", "metric": "loss", "mode": "min", "perturbation_interval": 2, "log_config": False}
    pbt = PopulationBasedTraining(hyperparam_mutations={"x": [1, 2, 3]}, **common) if kind == "pbt" else PB2(hyperparam_bounds={"x": [1.0, 3.0]}, **common)
    trials = [Trial("t", config={"x": 1}, stub=True, trial_id=i) for i in ids]
    controller = _Controller(trials, root)
    for trial in trials:
        trial.status = Trial.RUNNING
        pbt.on_trial_add(controller, trial)
    for epoch in range(1, epochs + 1):
        for rank, trial in enumerate(trials):
            if trial.status == Trial.RUNNING:
                pbt.on_trial_result(controller, trial, {"epoch": epoch, "loss": 10.0 * (4 - rank) - epoch, "training_iteration": epoch})
    return pbt, trials


def _population_state(pbt: object) -> dict:
    states = {t.trial_id: (s.last_perturbation_time, s.last_train_time, s.last_score, s.last_checkpoint and s.last_checkpoint.path)
              for t, s in pbt._trial_state.items()}
    lower, upper = pbt._quantiles()
    history = pbt.data.to_dict("records") if hasattr(pbt, "data") else None  # PB2's results, which its GP is fitted on
    return {"trials": states, "quantiles": ([t.trial_id for t in lower], [t.trial_id for t in upper]), "perturbations": pbt._num_perturbations,
            "pb2": history}


def _decisions(pbt: object, trials: list, kind: str, root: Path) -> list:
    """What PBT decides on epochs 6 to 9 of every trial, each running (a paused one restarted), and how many perturbations it made by the end of each."""
    import random

    import numpy as np

    controller = _Controller(trials, root)
    out, before = [], pbt._num_perturbations
    for epoch in range(6, 10):
        random.seed(epoch)
        np.random.seed(epoch)
        for trial in sorted(trials, key=lambda t: t.trial_id):
            trial.status = trial.RUNNING
            rank = int(trial.trial_id[-1])
            out.append((trial.trial_id, epoch, pbt.on_trial_result(controller, trial, {"epoch": epoch, "loss": 10.0 * (4 - rank) - epoch,
                                                                                         "training_iteration": epoch})))
        out.append(pbt._num_perturbations - before)
    return out


@pytest.mark.parametrize("kind", ["pbt", "pb2"])
def test_pbts_population_comes_back_with_its_perturbation_times_and_quantiles(kind: str, tmp_path: Path) -> None:
    from dltune.ray_compat.scheduler_state import restore, snapshot

    ids = [f"p_{i:05d}" for i in range(4)]
    saved, originals = _population(ids, epochs=5, root=tmp_path, kind=kind)
    before = _population_state(saved)
    assert before["perturbations"] >= 1 and {t[0] for t in before["trials"].values()} >= {4}  # it has perturbed, and exploited
    taken = snapshot(saved)
    fresh, resumed = _population(list(reversed(ids)), epochs=0, root=tmp_path, kind=kind)  # the resumed trials, re-added in another order
    restore(fresh, *taken, resumed)
    assert _population_state(fresh) == before != _population_state(_population(ids, epochs=0, root=tmp_path, kind=kind)[0])
    by_id = {t.trial_id: t for t in resumed}
    assert all(trial is by_id[trial.trial_id] for trial in fresh._trial_state)
    # fed the same results, the restored population decides as the uninterrupted one does; one that starts afresh does not
    afresh, afresh_trials = _population(ids, epochs=0, root=tmp_path, kind=kind)
    assert _decisions(saved, originals, kind, tmp_path) == _decisions(fresh, resumed, kind, tmp_path) != _decisions(afresh, afresh_trials, kind, tmp_path)

    # a top trial's checkpoint deleted since the save (the keep policy, the resume's redo) comes back as none, not as a dir to copy
    top = next(tid for tid, state in before["trials"].items() if state[3])
    shutil.rmtree(before["trials"][top][3])
    again, trials = _population(ids, epochs=0, root=tmp_path, kind=kind)
    restore(again, *taken, trials)
    expected = {**before["trials"], top: (*before["trials"][top][:3], None)}
    assert _population_state(again)["trials"] == expected
