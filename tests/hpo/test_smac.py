"""SMAC3 as a searcher: its Hyperband budgets end at train.epochs, its state survives a save and
restore, and a real search runs each trial to the epochs SMAC asked for."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from objectives import curve
from dltune import api
from dltune.config import Config, load_config
from dltune.errors import ConfigError
from dltune.hpo import algorithms
from dltune.space import parse_space

SPACE = "tune.space={params.x: {uniform: [-5.0, 5.0]}, params.width: {quniform: [8, 64, 8]}, params.act: {choice: [relu, tanh]}}"


def _build(epochs: int, eta: int, *extra: str, space: str = SPACE):
    cfg = load_config(None, [space, "tune.searcher=smac", "tune.metric=loss", "tune.mode=min", f"train.epochs={epochs}",
                             f"tune.reduction_factor={eta}", "tune.grace_period=1", *extra])
    params = parse_space(cfg.tune.space, Config)
    choice = algorithms.resolve_choice(params, cfg)
    algorithms.check_compatible(choice, params, cfg)
    searcher = algorithms.build_searcher(choice, cfg, 1)
    searcher.set_search_properties("loss", "min", {})
    return searcher, algorithms.build_scheduler(choice, cfg, params), cfg


def _run(searcher, trials: range) -> list[int]:
    """Ask and tell each trial in turn (loss by x); the epochs SMAC asked for, in order."""
    asked = []
    for i in trials:
        config = searcher.suggest(str(i))
        assert config["params.width"] in range(8, 65, 8) and config["params.act"] in ("relu", "tanh")
        asked.append(searcher.budget(str(i)))
        searcher.on_trial_complete(str(i), {"loss": (config["params.x"] - 2.0) ** 2 + 1.0 / asked[-1], "epoch": asked[-1]})
    return asked


@pytest.mark.parametrize("epochs", [10, 52, 100])
@pytest.mark.parametrize("eta", [2, 3, 4])
def test_smacs_hyperband_budgets_end_at_train_epochs(epochs: int, eta: int) -> None:
    searcher, scheduler, cfg = _build(epochs, eta, "tune.searcher_kwargs={initial_configs: 500}")  # random configs: the budgets alone
    asked: list[int] = []
    while epochs not in asked and len(asked) < 1000:  # the first bracket, SMAC's most aggressive, has every budget
        asked += _run(searcher, range(len(asked), len(asked) + 1))
    printed = algorithms.describe_rungs(scheduler, cfg)
    assert printed == f"smac hyperband budgets (epochs): {', '.join(map(str, sorted(set(asked))))}" and max(asked) == epochs, (printed, sorted(set(asked)))
    assert len(set(asked)) == int(math.log(epochs, eta) + 1e-9) + 1


def test_the_printed_budgets_follow_smacs_own_arithmetic() -> None:
    # log(243) / log(3) is 4.999...: SMAC floors it, so its smallest budget is 3 epochs, not 1
    searcher, scheduler, cfg = _build(243, 3)
    assert algorithms.describe_rungs(scheduler, cfg) == "smac hyperband budgets (epochs): 3, 9, 27, 81, 243"
    assert searcher.suggest("0") is not None and searcher.budget("0") == 3


def test_a_crashed_or_diverged_trial_leaves_smac_asking() -> None:
    searcher, _, _ = _build(1, 3, "tune.searcher_kwargs={initial_configs: 2}")
    searcher.suggest("crashed")
    searcher.on_trial_complete("crashed", None, error=True)
    searcher.suggest("diverged")
    searcher.on_trial_complete("diverged", {"loss": math.nan, "epoch": 1})
    assert searcher.told == 0  # waiting for a finite cost to tell them at
    _run(searcher, range(4))  # the model's own proposals after the first finite result
    assert searcher.told == 6


def test_a_small_discrete_space_ends_the_search_once_smac_has_tried_it_all() -> None:
    from ray.tune.search import Searcher

    searcher, _, _ = _build(1, 3, "tune.num_samples=8", space="tune.space={params.act: {choice: [relu, tanh, gelu]}}")
    configs = []
    for i in range(8):
        config = searcher.suggest(str(i))
        if config == Searcher.FINISHED:
            break
        configs.append(config["params.act"])
        searcher.on_trial_complete(str(i), {"loss": float(i), "epoch": 1})
    assert sorted(configs) == ["gelu", "relu", "tanh"]


def test_smac_goes_on_from_its_saved_brackets(tmp_path: Path) -> None:
    uninterrupted, _, _ = _build(9, 3)
    _run(uninterrupted, range(7))
    uninterrupted.suggest("7")  # asked, not told when the state is saved
    uninterrupted.save(str(tmp_path / "searcher.pkl"))
    restored, _, _ = _build(9, 3)
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert not restored.heard("7") and restored.heard("6") and restored.budget("7") == uninterrupted.budget("7")
    for searcher in (uninterrupted, restored):
        searcher.on_trial_complete("7", {"loss": 1.0, "epoch": searcher.budget("7")})
    assert restored.told == uninterrupted.told == 8
    # both go on with the first bracket's second stage (3 epochs); a fresh SMAC would start a first stage (1 epoch)
    assert _run(restored, range(8, 11)) == _run(uninterrupted, range(8, 11)) == [3, 3, 3]
    assert _run(_build(9, 3)[0], range(3)) == [1, 1, 1]


def test_smac_learns_a_trial_it_never_asked_for_at_the_budget_of_the_epoch_it_reached() -> None:
    searcher, _, _ = _build(52, 3)
    _run(searcher, range(2))
    # 18 epochs is SMAC's budget of 52 / 3 = 17.33 (SMAC ignores a trial at a budget of its own it lacks)
    searcher.tell_finished("late", {"params.x": 1.0, "params.width": 16, "params.act": "tanh"}, {"loss": 0.5, "epoch": 18})
    assert searcher.heard("late") and searcher.budget("late") == 18 and searcher.told == 3
    history = searcher._smac.runhistory
    assert sorted({round(key.budget, 2) for key in history.keys()}) == [1.93, 17.33] and len({key.seed for key in history.keys()}) == 1


@pytest.mark.parametrize(("overrides", "message"), [
    (["tune.scheduler=asha"], "tune.scheduler: smac decides each trial's epochs with its own Hyperband"),
    (["tune.searcher=optuna", "tune.scheduler=smac_hyperband"], "tune.scheduler: smac_hyperband runs the epochs SMAC asks for; use tune.searcher=smac, not optuna"),
    (["tune.reduction_factor=2.5"], "tune.reduction_factor: smac_hyperband (SMAC's Hyperband) takes a whole number, not 2.5"),
    (["tune.scheduler=smac_hyperband", "tune.grace_period=9"], "tune.scheduler: smac_hyperband needs train.epochs above tune.grace_period (9)"),
])
def test_smac_refuses_what_it_cannot_run(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        _build(9, 3, *overrides)


@pytest.mark.parametrize(("epochs", "grace"), [(1, 1), (9, 9)])
def test_smac_with_no_epochs_to_spare_runs_full_runs(epochs: int, grace: int) -> None:
    searcher, scheduler, cfg = _build(epochs, 3, f"tune.grace_period={grace}")
    assert not searcher.multi_fidelity and type(scheduler).__name__ == "FIFOScheduler"
    assert _run(searcher, range(3)) == [epochs] * 3


@pytest.mark.ray
@pytest.mark.slow
def test_smac_runs_each_trial_to_the_epochs_it_asked_for(ray_cluster, tmp_path: Path) -> None:
    out = api.tune(None, ["tune.space={params.x: {uniform: [-5.0, 5.0]}}", "tune.metric=loss", "tune.mode=min", "tune.num_samples=13",
                          "tune.max_concurrent_trials=1", "train.epochs=9", "tune.searcher=smac", "tune.reduction_factor=3", "tune.grace_period=1",
                          f"output.dir={tmp_path}", "output.experiment=s"], verbose=False, fn=curve)
    with open(tmp_path / "s" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ended = sorted((int(r["epochs"]), r["stop_reason"]) for r in rows)
    # one trial at a time, SMAC's first bracket runs whole: its configs at 1 epoch, the best third again at 3, the best at 9
    assert {e for e, _ in ended} == {1, 3, 9} and all((e == 9) == (reason == "completed") for e, reason in ended), ended
    assert out.best_trial in {r["trial_id"] for r in rows if r["epochs"] == "9"}
