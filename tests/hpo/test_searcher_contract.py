"""Every searcher and scheduler dltune offers, as the very objects it builds for a search, driven
in-process in the order Ray Tune's controller calls them (bench/lcbench_sim.py's RayDriver, the
search benchmark's own) over a trivial objective: no trial process and no Ray cluster.

End-to-end searches over real trials stay where a searcher's part in them is more than these calls:
`auto` and BlendSearch in test_tune.py, Optuna's samplers and the median rule in
test_train_fn_search.py, BOHB and HyperBand in test_fidelity.py, SMAC in test_smac.py."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import ROOT
from dltune import schema
from dltune.config import load_config
from dltune.hpo.trial import trial_config

EPOCHS = 4
SPACE = "tune.space={optim.lr: {loguniform: [0.0001, 0.05]}, model.dropout: {uniform: [0.0, 0.3]}, train.batch_size: {choice: [16, 32]}}"
GRID = "tune.space={optim.lr: {grid: [0.001, 0.01]}, model.dropout: {choice: [0.0, 0.2]}}"


@pytest.fixture(scope="module")
def sim() -> Any:
    """bench/lcbench_sim.py, imported from the checkout."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    try:
        import lcbench_sim
    finally:
        monkeypatch.undo()
    return lcbench_sim


def _search(sim: Any, overrides: list[str], storage: Path, slots: int = 2, epochs: int = EPOCHS) -> tuple[Any, dict[Any, Any], list[dict[str, Any]]]:
    """One search to its end: the driver, each trial's run and the configs the searcher handed out."""
    base = ["model.name=mlp", "tune.metric=val_acc", "tune.mode=max", f"train.epochs={epochs}", "tune.grace_period=1", "tune.seed=0"]
    runs: dict[Any, Any] = {}
    configs: list[dict[str, Any]] = []

    def make_run(config: dict[str, Any]) -> Any:
        configs.append(config)
        score = -abs(math.log10(config["optim.lr"]) + 2.5) - config.get("model.dropout", 0.0)
        return sim.Run(acc=np.array([score * (1 + 1 / epoch) for epoch in range(1, epochs + 1)]), cost=np.ones(epochs))

    driver = sim.RayDriver([*base, *overrides], slots, make_run, runs, str(storage), epochs)
    sim.simulate(driver, runs, slots, budget=math.inf, epochs=epochs)
    return driver, runs, configs


@pytest.mark.parametrize(("searcher", "extra", "trials"), [
    ("random", [SPACE], 3),
    ("grid", [GRID, "tune.num_samples=1"], 4),
    ("optuna", [SPACE, "tune.sampler=tpe"], 3),
    ("optuna", [SPACE, "tune.sampler=gp"], 3),
    ("hyperopt", [SPACE], 3),
    ("blendsearch", [SPACE, "tune.low_cost={optim.lr: 0.001}"], 3),
    ("cfo", [SPACE, "tune.low_cost={optim.lr: 0.001}"], 3),
    ("bohb", [SPACE], 3),
    ("smac", [SPACE], 3),
    ("auto", [SPACE], 3),
], ids=["random", "grid", "optuna-tpe", "optuna-gp", "hyperopt", "blendsearch", "cfo", "bohb", "smac", "auto"])
def test_each_searcher_hands_out_num_samples_configs_the_config_accepts(sim: Any, caplog: pytest.LogCaptureFixture, tmp_path: Path, searcher: str,
                                                                         extra: list[str], trials: int) -> None:
    caplog.set_level(logging.WARNING)
    driver, runs, configs = _search(sim, [f"tune.searcher={searcher}", "tune.num_samples=3", *extra], tmp_path)
    assert len(runs) == len(configs) == trials, configs
    # each trial's config goes into dltune's config as a trial's does, inside the space, numpy scalars made plain
    base = schema.to_mapping(load_config(None, ["model.name=mlp"]))
    for config in configs:
        cfg = trial_config(base, config)
        assert 0.0001 <= cfg.optim.lr <= 0.05 and 0.0 <= cfg.model.dropout <= 0.3 and type(cfg.train.batch_size) is int
    if searcher == "grid":
        assert sorted((c["optim.lr"], c["model.dropout"]) for c in configs) == [(0.001, 0.0), (0.001, 0.2), (0.01, 0.0), (0.01, 0.2)]
    # the scheduler the rule picked let at least one trial through to train.epochs, and stopped none past it
    assert max(run.epoch for run in runs.values()) == EPOCHS and all(1 <= run.epoch <= EPOCHS for run in runs.values())
    assert not [r.getMessage() for r in caplog.records if "will be ignored" in r.getMessage()]  # no setting dltune passed is dropped
    if searcher == "auto":
        assert (driver.choice.searcher, driver.choice.scheduler) == ("optuna", "optuna_hyperband") and "multi-fidelity" in driver.choice.reason


@pytest.mark.parametrize("scheduler", ["fifo", "asha", "hyperband", "median", "optuna_hyperband"])
def test_each_scheduler_runs_the_trials_it_keeps_to_train_epochs_and_stops_some_early(sim: Any, tmp_path: Path, scheduler: str) -> None:
    searcher = "optuna" if scheduler == "optuna_hyperband" else "random"
    _, runs, _ = _search(sim, [f"tune.searcher={searcher}", f"tune.scheduler={scheduler}", "tune.num_samples=9", "tune.reduction_factor=2", SPACE],
                         tmp_path)
    epochs = sorted(run.epoch for run in runs.values())
    assert len(epochs) == 9 and epochs[-1] == EPOCHS, epochs
    if scheduler == "fifo":
        assert epochs[0] == EPOCHS
    else:
        assert epochs[0] < EPOCHS, f"{scheduler} stopped no trial early: {epochs}"


@pytest.mark.parametrize("searcher", ["random", "bohb"])
def test_hyperband_halves_each_bracket_once_it_holds_all_its_trials(sim: Any, tmp_path: Path, searcher: str) -> None:
    """17 trials of 9 epochs, eta 3: one band, brackets of 9, 5 and 3 trials. Synchronous halving keeps
    3 of the 9 past epoch 1 and 1 of those past 3, 2 of the 5 past 3, and runs the 3 to 9: so it goes
    whether the trials come all at once (random) or one by one as slots free (BOHB's searcher)."""
    _, runs, _ = _search(sim, [f"tune.searcher={searcher}", "tune.scheduler=hyperband", "tune.num_samples=17", "tune.reduction_factor=3", SPACE],
                         tmp_path, epochs=9)
    assert sorted(run.epoch for run in runs.values()) == [1] * 6 + [3] * 5 + [9] * 6
