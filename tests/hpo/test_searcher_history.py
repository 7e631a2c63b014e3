"""After a resume, a searcher restored from a save older than the experiment state is told the
finished trials it lacks: the Optuna study and BlendSearch's results end as if nothing was lost."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState
from ray import tune
from ray.tune.experiment import Trial

from dltune.ray_compat.optuna_search import FidelityAwareOptunaSearch, innermost_searcher
from dltune.ray_compat.searcher_history import SearcherHistory, make_whole

SPACE = {"x": tune.uniform(-5.0, 5.0)}


def _finished(trial_id: str, config: dict[str, Any], result: dict[str, Any]) -> Trial:
    trial = Trial("fn", config=config, trial_id=trial_id, stub=True)
    trial.set_status(Trial.TERMINATED)
    trial.update_last_result({**result, "config": config})
    return trial


def _optuna() -> FidelityAwareOptunaSearch:
    import optuna

    searcher = FidelityAwareOptunaSearch(time_attr="epoch", full_fidelity=4, sampler=optuna.samplers.TPESampler(seed=0))
    searcher.set_search_properties("loss", "min", SPACE)  # as Tune hands it the space
    return searcher


def _run(searcher: FidelityAwareOptunaSearch, trial_id: str, epochs: int, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Suggest a trial (unless ``config`` was), report ``epochs`` epochs and end it (stopped short of 4, or complete)."""
    config = config or searcher.suggest(trial_id)
    result: dict[str, Any] = {}
    for epoch in range(1, epochs + 1):
        result = {"epoch": epoch, "loss": (config["x"] - 1.0) ** 2 + 1.0 / epoch}
        if epoch < epochs or epochs == 4:  # Tune hands a scheduler's stopping result to on_trial_complete only
            searcher.on_trial_result(trial_id, result)
    searcher.on_trial_complete(trial_id, result)
    return {"config": config, "result": result}


def _states(searcher: FidelityAwareOptunaSearch) -> dict[str, tuple[TrialState, float | None]]:
    by_number = {t.number: t for t in searcher._ot_study.get_trials(deepcopy=False)}
    return {tid: (by_number[t.number].state, by_number[t.number].value) for tid, t in searcher._ot_trials.items()} | {
        f"added {t.number}": (t.state, t.value) for t in by_number.values() if t.number not in {o.number for o in searcher._ot_trials.values()}}


def test_a_restored_optuna_study_is_told_the_trials_that_ended_after_its_save(tmp_path: Path) -> None:
    killed = _optuna()
    a = _run(killed, "a", 4)
    b_config = killed.suggest("b")
    killed.suggest("c")  # running when the driver died: Tune resumes it, the study keeps it running
    killed.save(str(tmp_path / "searcher.pkl"))  # the searcher's last save
    b = _run(killed, "b", 4, b_config)  # its end reached the experiment state, not the searcher's
    d = _run(killed, "d", 2)  # suggested and stopped at a rung after the searcher's save
    restored = _optuna()
    restored.restore(str(tmp_path / "searcher.pkl"))
    trials = [_finished(tid, run["config"], run["result"]) for tid, run in (("a", a), ("b", b), ("d", d))]

    assert make_whole(restored, trials) == (3, 2)
    states = _states(restored)
    assert states["a"] == (TrialState.COMPLETE, a["result"]["loss"]) and states["b"] == (TrialState.COMPLETE, b["result"]["loss"])
    assert states["c"][0] == TrialState.RUNNING
    added = [v for k, v in states.items() if k.startswith("added")]
    assert added == [(TrialState.PRUNED, d["result"]["loss"])]  # d, as the killed study had it: stopped at epoch 2
    assert _states(killed)["d"] == (TrialState.PRUNED, d["result"]["loss"])
    assert make_whole(restored, trials) == (3, 0)  # once told, nothing again


def test_a_trial_the_restored_study_never_asked_for_reports_and_ends_without_error(tmp_path: Path) -> None:
    # Ray writes the experiment state, then the searcher's: a kill between the two resumes a trial
    # the study never asked for
    killed = _optuna()
    _run(killed, "a", 4)
    killed.save(str(tmp_path / "searcher.pkl"))
    config = killed.suggest("b")
    restored = _optuna()
    restored.restore(str(tmp_path / "searcher.pkl"))
    before = _states(restored)
    restored.on_trial_result("b", {"epoch": 1, "loss": 0.5, "config": config})
    restored.on_trial_complete("b", {"epoch": 4, "loss": 0.4, "config": config})
    assert _states(restored) == before  # the study goes on without it; a later resume adds it as evaluated


def test_a_restored_blendsearch_is_told_the_configs_that_ended_after_its_save(tmp_path: Path) -> None:
    from flaml import BlendSearch

    def blend() -> BlendSearch:
        searcher = BlendSearch(seed=1)
        searcher.set_search_properties("loss", "min", SPACE)
        return searcher

    killed, runs = blend(), {}
    for trial_id in ("a", "b", "c"):
        config = killed.suggest(trial_id)
        runs[trial_id] = (config, {"loss": (config["x"] - 1.0) ** 2, "epoch": 1})
        killed.on_trial_complete(trial_id, {**runs[trial_id][1], "config": config})
        if trial_id == "a":
            killed.save(str(tmp_path / "searcher.pkl"))
    restored = blend()
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert len(restored._result) == len(killed._result) - 2
    trials = [_finished(tid, config, result) for tid, (config, result) in runs.items()]

    assert make_whole(restored, trials) == (3, 2)
    assert set(restored._result) == set(killed._result)
    assert make_whole(restored, trials) == (3, 0)


def _killed_and_restored(make: Callable[[], Any], run: Callable[..., tuple[dict[str, Any], dict[str, Any]]],
                         tmp_path: Path) -> tuple[Any, Any, list[Trial]]:
    """A searcher whose driver died after its last save, the one restored from that save, and the
    trials the experiment state has as finished: "a" ended before the save, "b" was suggested before
    it and ended after, "d" was suggested and ended after it; "c" was running when the driver died."""
    killed = make()
    runs = {"a": run(killed, "a")}
    b_config = killed.suggest("b")
    killed.suggest("c")
    killed.save(str(tmp_path / "searcher.pkl"))
    runs["b"] = run(killed, "b", b_config)
    runs["d"] = run(killed, "d")
    restored = make()
    restored.restore(str(tmp_path / "searcher.pkl"))
    return killed, restored, [_finished(tid, config, result) for tid, (config, result) in runs.items()]


def test_a_restored_hyperopt_search_is_told_the_trials_that_ended_after_its_save(tmp_path: Path) -> None:
    from hyperopt.base import JOB_STATE_DONE, spec_from_misc
    from ray.tune.search.hyperopt import HyperOptSearch

    space = {**SPACE, "act": tune.choice(["relu", "tanh", "gelu"])}

    def hyperopt() -> HyperOptSearch:
        searcher = HyperOptSearch(random_state_seed=0)
        searcher.set_search_properties("loss", "min", space)
        return searcher

    def run(searcher: HyperOptSearch, trial_id: str, config: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        config = config or searcher.suggest(trial_id)
        result = {"loss": (config["x"] - 1.0) ** 2 + len(config["act"]), "epoch": 1}
        searcher.on_trial_complete(trial_id, result)
        return config, result

    def evaluated(searcher: HyperOptSearch) -> list[tuple[float, str, float]]:
        acts = ["relu", "tanh", "gelu"]
        return sorted((spec["x"], acts[spec["act"]], doc["result"]["loss"]) for doc in searcher._hpopt_trials.trials
                      if doc["state"] == JOB_STATE_DONE for spec in [spec_from_misc(doc["misc"])])

    killed, restored, trials = _killed_and_restored(hyperopt, run, tmp_path)
    assert len(evaluated(restored)) == 1

    assert make_whole(restored, trials) == (3, 2)
    assert evaluated(restored) == evaluated(killed) and len(evaluated(killed)) == 3  # b heard by id, d added, choices by index
    assert "c" in restored._live_trial_mapping
    assert make_whole(restored, trials) == (3, 0)
    assert set(restored.suggest("e")) == {"x", "act"}  # TPE goes on over the history it was given


def test_a_restored_bohb_is_told_the_trials_that_ended_after_its_save(tmp_path: Path) -> None:
    from dltune.ray_compat.searcher_history import RecordingBOHB

    def bohb() -> RecordingBOHB:
        searcher = RecordingBOHB(time_attr="epoch", seed=0)
        searcher.set_search_properties("loss", "min", {**SPACE, "act": tune.choice(["relu", "tanh"])})
        return searcher

    def run(searcher: RecordingBOHB, trial_id: str, config: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        config = config or searcher.suggest(trial_id)
        result = {"loss": (config["x"] - 1.0) ** 2, "epoch": 3}
        searcher.on_trial_result(trial_id, {**result, "hyperband_info": {"budget": 3}})  # what HyperBandForBOHB hands it at rung 3
        searcher.on_trial_complete(trial_id, result)
        return config, result  # the trial's last result, as the experiment state keeps it

    def model(searcher: RecordingBOHB) -> list[tuple[list[float], float]]:
        return sorted((list(c), loss) for c, loss in zip(searcher.bohber.configs[3], searcher.bohber.losses[3]))

    killed, restored, trials = _killed_and_restored(bohb, run, tmp_path)
    assert restored.heard == {"a"} and len(model(restored)) == 1

    assert make_whole(restored, trials) == (3, 2)
    assert restored.heard == killed.heard == {"a", "b", "d"}
    assert model(restored) == model(killed) and len(model(killed)) == 3  # b by the params it kept, d by its config
    assert set(restored.trial_to_params) == {"c"}  # still running: Tune resumes it and tells its end
    assert make_whole(restored, trials) == (3, 0)
    # a trial it never suggested, resumed from an experiment state saved after the searcher's: its
    # results carry its config (flattened, as Tune hands them over); without one it is left out
    restored.on_trial_result("e", {"loss": 0.5625, "epoch": 3, "config/x": 0.25, "config/act": "tanh", "hyperband_info": {"budget": 3}})
    restored.on_trial_complete("e", {"loss": 0.5625, "epoch": 3})
    restored.on_trial_result("f", {"loss": 1.0, "epoch": 1, "hyperband_info": {"budget": 1}})
    restored.on_trial_complete("f", {"loss": 1.0, "epoch": 1})
    assert restored.heard == {"a", "b", "d", "e"} and len(model(restored)) == 4


def test_the_resume_says_what_it_found_and_leaves_unchecked_searchers_alone(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.bohb import TuneBOHB

    searcher = _optuna()
    run = _run(searcher, "a", 4)
    history = SearcherHistory(ConcurrencyLimiter(searcher, max_concurrent=2), verbose=True)
    assert history.searcher is searcher
    history.on_step_begin(7, [_finished("a", run["config"], run["result"])])
    assert capsys.readouterr().out == "resume: FidelityAwareOptunaSearch knows all 1 trials that had finished\n"
    history.on_step_begin(8, [])  # only at the first step
    assert capsys.readouterr().out == ""

    lagging = SearcherHistory(_optuna(), verbose=False)
    lagging.searcher.suggest("a")
    lagging.on_step_begin(3, [_finished("a", run["config"], run["result"])])
    assert capsys.readouterr().err == ("dltune: warning: resume: FidelityAwareOptunaSearch's saved state lacked 1 of the 1 trials that had "
                                       "finished; they were told to it with their last results\n")

    bohb = TuneBOHB()  # Ray's own, which keeps no record of the trials it heard end
    bohb.set_search_properties("loss", "min", SPACE)
    assert innermost_searcher(bohb) is bohb and make_whole(bohb, [_finished("a", run["config"], run["result"])]) is None


def test_a_searcher_that_says_what_it_heard_is_told_what_it_lacks() -> None:
    class Own:
        def __init__(self) -> None:
            self.told: dict[str, tuple[dict, dict]] = {"a": ({}, {})}

        def heard(self, trial_id: str) -> bool:
            return trial_id in self.told

        def tell_finished(self, trial_id: str, config: dict, result: dict) -> None:
            self.told[trial_id] = (config, result)

    own = Own()
    trials = [_finished(tid, {"x": x}, {"loss": x, "epoch": 2}) for tid, x in (("a", 1.0), ("b", 2.0))]
    assert make_whole(own, trials) == (2, 1)
    assert own.told["b"] == ({"x": 2.0}, {**trials[1].last_result})
    assert make_whole(own, trials) == (2, 0)
