"""Schedulers that let a trial through run it to train.epochs, and searchers that learn a stopped
trial as stopped: real Ray Tune searches over a plain objective that reports instantly."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from ray.tune.schedulers import HyperBandScheduler

from conftest import results_rows
from objectives import breaks_after_its_first_epoch_when_x_is_positive, curve
from dltune import api
from dltune.config import Config, load_config
from dltune.hpo import algorithms
from dltune.ray_compat.schedulers import hyperband_brackets, rung
from dltune.space import parse_space


def _search(tmp_path: Path, searcher: str, scheduler: str, epochs: int, eta: int, trials: int) -> list[dict[str, str]]:
    api.tune(None, ["tune.space={params.x: {uniform: [-5.0, 5.0]}}", "tune.metric=loss", "tune.mode=min", f"tune.num_samples={trials}",
                    f"train.epochs={epochs}", f"tune.searcher={searcher}", f"tune.scheduler={scheduler}", f"tune.reduction_factor={eta}",
                    "tune.grace_period=1", f"output.dir={tmp_path}", "output.experiment=s"], verbose=False, fn=curve)
    return results_rows(tmp_path / "s")


def _check(rows: list[dict[str, str]], epochs: int, rungs: set[int]) -> None:
    """Each trial ended at a rung below the top, stopped, or ran exactly train.epochs, completed."""
    ended = sorted((int(r["epochs"]), r["stop_reason"]) for r in rows)
    assert all(r["stop_reason"] in ("completed", "early_stopped") for r in rows), ended
    assert all((e == epochs) == (reason == "completed") for e, reason in ended), ended
    assert {e for e, _ in ended} <= rungs | {epochs}, (ended, sorted(rungs))
    assert ended[-1] == (epochs, "completed") and ended[0][1] == "early_stopped", ended  # the scheduler cut some and let some through


def _scheduler(searcher: str, epochs: int, eta: int):
    cfg = load_config(None, ["tune.space={params.x: {uniform: [-5.0, 5.0]}}", f"tune.searcher={searcher}", "tune.scheduler=hyperband",
                             f"train.epochs={epochs}", f"tune.reduction_factor={eta}"])
    params = parse_space(cfg.tune.space, Config)
    return algorithms.build_scheduler(algorithms.resolve_choice(params, cfg), cfg, params)


def _rungs(searcher: str, epochs: int, eta: int) -> set[int]:
    return {r for _, rungs in hyperband_brackets(_scheduler(searcher, epochs, eta)) for r in rungs[:-1]}


@pytest.mark.parametrize("searcher", ["random", "bohb"])
@pytest.mark.parametrize("epochs", [10, 52, 100])
@pytest.mark.parametrize("eta", [2, 3, 4])
def test_every_hyperband_bracket_ends_at_train_epochs(searcher: str, epochs: int, eta: int) -> None:
    brackets = hyperband_brackets(_scheduler(searcher, epochs, eta))
    assert len(brackets) == round(math.log(epochs) / math.log(eta)) + 1, brackets
    for _, rungs in brackets:
        assert rungs[-1] == epochs and rungs[0] >= 1 and rungs == sorted(set(rungs)), brackets


def test_rays_own_hyperband_still_ends_brackets_short_of_max_t() -> None:
    """Why FullFidelityHyperBand exists; when Ray fixes this, it can go."""
    assert [rungs[-1] for _, rungs in hyperband_brackets(HyperBandScheduler(max_t=52, reduction_factor=3))] == [52, 51, 45, 27]


class _Pausing:
    """A trial as HyperBand sees it: a status, and whether a save (here the pause's) is in flight."""

    def __init__(self, name: str) -> None:
        self.trial_id, self.status, self.is_saving = name, "RUNNING", False


class _Controller:
    """Tune's stop_trial as HyperBand meets it: PENDING or PAUSED -> on_trial_remove, RUNNING -> on_trial_complete."""

    def __init__(self, scheduler, trials: list) -> None:
        self.scheduler, self.trials = scheduler, trials

    def get_trials(self) -> list:
        return self.trials

    def _set_trial_status(self, trial, status: str) -> None:
        trial.status = status

    def stop_trial(self, trial) -> None:
        if trial.status in ("PENDING", "PAUSED"):
            self.scheduler.on_trial_remove(self, trial)
        elif trial.status == "RUNNING":
            self.scheduler.on_trial_complete(self, trial, {})
        trial.status, trial.is_saving = "TERMINATED", False


def test_hyperband_stops_a_trial_whose_pause_was_saving_when_its_bracket_finished() -> None:
    """The hang of the 14-trial search: a trial reaches max_t and pauses; before its pause's save
    resolves, the bracket's last trial reaches max_t, so the bracket finishes and stops its PAUSED
    trials, which this one is not yet. Once saved it is PAUSED in a finished bracket: no result
    or removal comes for it, and Ray's HyperBand never picks it to run, so Tune waited for ever."""
    from ray.tune.schedulers import TrialScheduler

    from dltune.ray_compat.schedulers import FullFidelityHyperBand

    scheduler = FullFidelityHyperBand(time_attr="epoch", metric="loss", mode="min", max_t=2, reduction_factor=2)
    first, last = _Pausing("first"), _Pausing("last")  # the one bracket of max_t 2 holding two trials
    controller = _Controller(scheduler, [first, last])
    for trial in (first, last):
        scheduler.on_trial_add(controller, trial)
    assert scheduler._trial_info[first][0] is scheduler._trial_info[last][0]
    for trial in (first, last):
        assert scheduler.on_trial_result(controller, trial, {"epoch": 1, "loss": 1.0}) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(controller, first, {"epoch": 2, "loss": 0.5}) == TrialScheduler.PAUSE
    first.is_saving = True  # Tune's pause_trial saves first; the trial stays RUNNING until the save resolves
    assert scheduler.on_trial_result(controller, last, {"epoch": 2, "loss": 0.4}) == TrialScheduler.STOP
    controller.stop_trial(last)
    first.status, first.is_saving = "PAUSED", False  # the save resolved: Tune stops the actor
    assert scheduler.choose_trial_to_run(controller) is None
    assert first.status == "TERMINATED"  # left PAUSED, Tune would wait on it for ever


def _a_trial_fails_after_the_first_halving(scheduler) -> tuple[list, object]:
    """Bracket s=2 of max_t 4, eta 2 (rungs 1, 2, 4) halves its four trials at epoch 1; of the
    two it keeps, one reaches epoch 2 and pauses there, and the other fails. Returns the
    controller's trials and the one left waiting."""
    from ray.tune.schedulers import TrialScheduler

    trials = [_Pausing(f"t{i}") for i in range(10)]  # brackets of 3, 3 and 4 trials
    controller = _Controller(scheduler, trials)
    for trial in trials:
        scheduler.on_trial_add(controller, trial)
    group = trials[6:]
    assert {id(scheduler._trial_info[t][0]) for t in group} == {id(scheduler._trial_info[group[0]][0])}
    for trial in trials[:6]:
        trial.status = "TERMINATED"  # the other brackets are done with
    for trial, loss in zip(group, (4.0, 3.0, 2.0)):
        assert scheduler.on_trial_result(controller, trial, {"epoch": 1, "loss": loss}) == TrialScheduler.PAUSE
        trial.status = "PAUSED"
    assert scheduler.on_trial_result(controller, group[3], {"epoch": 1, "loss": 1.0}) == TrialScheduler.CONTINUE
    assert [t.status for t in group] == ["TERMINATED", "TERMINATED", "PAUSED", "RUNNING"]
    group[2].status = "RUNNING"  # unpaused
    assert scheduler.on_trial_result(controller, group[2], {"epoch": 2, "loss": 0.5}) == TrialScheduler.PAUSE
    group[2].status = "PAUSED"
    group[3].status = "ERROR"
    scheduler.on_trial_error(controller, group[3])
    return trials, group[2]


def test_hyperband_halves_a_bracket_whose_last_running_trial_failed_after_its_first_halving() -> None:
    """Ray halves a bracket on a result, or on a removal before its first halving only. A trial
    that failed after it, while the other waited at the next rung, left that one PAUSED with
    nothing to resume it: Tune waited for ever."""
    from dltune.ray_compat.schedulers import FullFidelityHyperBand

    ray_own = HyperBandScheduler(time_attr="epoch", metric="loss", mode="min", max_t=4, reduction_factor=2)
    _, waiting = _a_trial_fails_after_the_first_halving(ray_own)
    assert ray_own.choose_trial_to_run(_Controller(ray_own, [])) is None and waiting.status == "PAUSED"  # Ray's own hang

    scheduler = FullFidelityHyperBand(time_attr="epoch", metric="loss", mode="min", max_t=4, reduction_factor=2)
    trials, waiting = _a_trial_fails_after_the_first_halving(scheduler)
    assert scheduler.choose_trial_to_run(_Controller(scheduler, trials)) is waiting  # halved to its last rung, and let through
    assert scheduler._trial_info[waiting][0]._cumul_r == 4


@pytest.mark.ray
@pytest.mark.slow
def test_a_hyperband_search_whose_trial_fails_after_a_halving_finishes(ray_cluster, tmp_path: Path) -> None:
    """The search the stand-in above is drawn from: its last bracket (4 trials, epochs 1, 2, 4)
    keeps x = 0.5 and -1; the first breaks while the second waits at epoch 2. Ray's own HyperBand
    left it waiting, and the search hung (here until the time budget cut it); now it is let
    through and runs to the end."""
    result = api.tune(None, ["tune.space={params.x: {grid: [-9, -8, -7, -6, -5, -4, -3, -2, 0.5, -1]}}", "tune.metric=loss", "tune.mode=min",
                             "tune.searcher=random", "tune.num_samples=1", "train.epochs=4", "tune.scheduler=hyperband", "tune.reduction_factor=2",
                             "tune.time_budget_s=120", f"output.dir={tmp_path}", "output.experiment=h"], verbose=False, fn=breaks_after_its_first_epoch_when_x_is_positive)
    ended = {float(r["params.x"]): (int(r["epochs"]), r["stop_reason"]) for r in results_rows(tmp_path / "h")}
    assert ended[0.5] == (1, "error") and ended[-1.0] == (4, "completed"), ended
    assert len(result.rows) == 10
    # x = 0.5 reported the best loss before it broke; the best config is the best trial that did not fail
    assert result.best_config.params["x"] == -1 and result.best_metric == 1.0


@pytest.mark.ray
@pytest.mark.slow
def test_hyperband_runs_every_trial_it_lets_through_to_train_epochs(ray_cluster, tmp_path: Path) -> None:
    # Ray's HyperBand fills its brackets least aggressive first: 14 trials reach the third (rungs 3, 5, 10).
    _check(_search(tmp_path, "random", "hyperband", 10, 2, 14), 10, _rungs("random", 10, 2))


@pytest.mark.ray
@pytest.mark.slow
def test_bohb_runs_every_trial_it_lets_through_to_train_epochs(ray_cluster, tmp_path: Path) -> None:
    # BOHB's HyperBand fills its most aggressive bracket first (rungs 1, 3, 10; Ray's own ends at 8).
    _check(_search(tmp_path, "bohb", "hyperband", 10, 4, 12), 10, _rungs("bohb", 10, 4))


@pytest.mark.ray
@pytest.mark.slow
def test_asha_runs_every_trial_it_lets_through_to_train_epochs(ray_cluster, tmp_path: Path) -> None:
    _check(_search(tmp_path, "optuna", "asha", 52, 3, 10), 52, {1, 3, 9, 27})  # Optuna tells stopped trials pruned (below)


def test_rungs_are_max_t_over_powers_of_eta_rounded_up() -> None:
    assert [rung(52, 3, k) for k in range(5)] == [52, 18, 6, 2, 1]
    assert [rung(100, 2, k) for k in range(8)] == [100, 50, 25, 13, 7, 4, 2, 1]
    assert [rung(81, 3, k) for k in range(5)] == [81, 27, 9, 3, 1]  # a power of eta: Ray's own rungs


def _told(searcher_class: type, **kwargs) -> list[tuple[str, dict[int, float]]]:
    """What Optuna learns of four trials, each fed as Ray's TuneController feeds a searcher: one that
    ran its 4 epochs, one that ended on its own after 3, one a scheduler stopped on its 2nd report
    (that result comes with done=True and only to on_trial_complete), and one that failed after 1;
    each as (state, intermediate values by step)."""
    import optuna
    from ray import tune

    storage = optuna.storages.InMemoryStorage()
    searcher = searcher_class(space={"x": tune.uniform(0.0, 1.0)}, metric="loss", mode="min", storage=storage, study_name="s",
                              sampler=optuna.samplers.RandomSampler(seed=0), **kwargs)
    for trial_id, epochs, how in (("full", 4, "ended"), ("own", 3, "ended"), ("stopped", 2, "stopped"), ("failed", 1, "error")):
        searcher.suggest(trial_id)
        results = [{"loss": 1.0 / e, "epoch": e, "training_iteration": e + 10} for e in range(1, epochs + 1)]
        for result in results[:-1] if how == "stopped" else results:
            searcher.on_trial_result(trial_id, result)
        searcher.on_trial_complete(trial_id, {**results[-1], "done": True} if how != "error" else None, error=how == "error")
    return [(t.state.name, t.intermediate_values) for t in optuna.load_study(study_name="s", storage=storage).trials]


def test_optuna_learns_a_stopped_trial_as_pruned_at_its_epochs_and_a_failed_one_as_failed() -> None:
    from ray.tune.search.optuna import OptunaSearch

    from dltune.ray_compat.optuna_search import FidelityAwareOptunaSearch

    assert _told(FidelityAwareOptunaSearch, time_attr="epoch", full_fidelity=4) == [
        ("COMPLETE", {1: 1.0, 2: 0.5, 3: 1 / 3, 4: 0.25}), ("COMPLETE", {1: 1.0, 2: 0.5, 3: 1 / 3}), ("PRUNED", {1: 1.0, 2: 0.5}), ("FAIL", {1: 1.0})]
    # Ray's own adapter: the stopped trial COMPLETE, intermediate values at training_iteration.
    told = _told(OptunaSearch)
    assert [state for state, _ in told] == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"] and told[2][1] == {11: 1.0}


@pytest.mark.ray
@pytest.mark.slow
def test_optuna_hyperband_prunes_by_optunas_own_rule_and_runs_the_rest_to_train_epochs(ray_cluster, tmp_path: Path) -> None:
    # Optuna's HyperbandPruner with 9 epochs and a factor of 3: successive halving at 1 and 3 epochs, in three brackets.
    _check(_search(tmp_path, "optuna", "optuna_hyperband", 9, 3, 16), 9, {1, 3})
