"""study.journal: the trials of any search, as they report, read with Optuna's own storage API
(what optuna-dashboard reads), while the search runs and after."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from conftest import trial_results
from dltune import api
from dltune.hpo.journal import RAY_TRIAL_ID, as_optuna_value, distribution
from dltune.space import Param


def slow_curve(ctx) -> None:
    for step in range(ctx.config.train.epochs):
        time.sleep(0.4)  # long enough for the journal to be read mid-search
        ctx.report({"loss": (ctx.params["x"] - 2.0) ** 2 + 1.0 / (step + 1)})


def _study(path: Path):
    import optuna
    from optuna.storages import JournalFileStorage, JournalStorage

    return optuna.load_study(study_name="j", storage=JournalStorage(JournalFileStorage(str(path))))


@pytest.mark.ray
@pytest.mark.slow
def test_the_journal_holds_every_trial_with_its_reports_while_the_search_runs_and_after(ray_cluster, tmp_path: Path) -> None:
    from optuna.trial import TrialState

    exp = tmp_path / "j"
    journal = exp / "study.journal"
    seen_running: list[int] = []
    done = threading.Event()

    def watch() -> None:  # as optuna-dashboard would: reads the file while the driver writes it
        while not done.is_set():
            if journal.exists() and not (exp / "summary.json").exists():
                reported = [t for t in _study(journal).trials if t.state == TrialState.RUNNING and t.intermediate_values]
                if reported:
                    seen_running.append(len(reported))
            time.sleep(0.3)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        api.tune(None, ["tune.space={params.x: {uniform: [-5.0, 5.0]}, params.k: {choice: [[1, 2], 3]}}", "tune.metric=loss", "tune.mode=min",
                        "tune.num_samples=5", "train.epochs=6", "tune.searcher=random", "tune.scheduler=asha", "tune.grace_period=1",
                        "tune.reduction_factor=2", f"output.dir={tmp_path}", "output.experiment=j"], verbose=False, fn=slow_curve)
    finally:
        done.set()
        watcher.join()
    assert seen_running, "no running trial with reports was ever read from the journal"

    histories = trial_results(exp)
    summary = json.loads((exp / "summary.json").read_text())
    trials = {t.user_attrs[RAY_TRIAL_ID]: t for t in _study(journal).trials}
    assert sorted(trials) == sorted(histories) and len(trials) == 5
    for trial_id, reports in histories.items():
        entry = trials[trial_id]
        assert entry.intermediate_values == {r["epoch"]: r["loss"] for r in reports}
        assert entry.params == {k: as_optuna_value(v) for k, v in reports[0]["config"].items()}
        if reports[-1]["epoch"] == 6:
            assert entry.state == TrialState.COMPLETE and entry.value == min(r["loss"] for r in reports)
        else:
            assert entry.state == TrialState.PRUNED
    assert min(t.value for t in trials.values() if t.value is not None) == summary["best"]["loss"]


def test_each_space_entry_has_its_optuna_distribution() -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    assert distribution(Param("a", "loguniform", (1e-4, 1e-1))) == FloatDistribution(1e-4, 1e-1, log=True)
    assert distribution(Param("b", "randint", (1, 5))) == IntDistribution(1, 4)  # Ray's upper bound is exclusive
    assert distribution(Param("c", "choice", ([64], [128], "auto"))) == CategoricalDistribution(["[64]", "[128]", "auto"])
