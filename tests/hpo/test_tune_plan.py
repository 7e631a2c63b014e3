"""Search-space grammar, the auto rule and the resource plan: no Ray cluster needed."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import run_cli
from dltune.config import Config, load_config
from dltune.errors import ConfigError
from dltune.hpo.algorithms import auto_choice, check_compatible, resolve_choice
from dltune.hpo.resources import ResourcePlanError, plan_resources
from dltune.space import parse_space


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("{optim.lr: {logunifrm: [0.001, 0.1]}}", "tune.space.optim.lr: unknown distribution 'logunifrm' (did you mean 'loguniform'?)"),
        ("{optim.lrr: {uniform: [0.001, 0.1]}}", "tune.space.optim.lrr: unknown key (did you mean 'lr'?)"),
        ("{optim.lr: {uniform: [0.1, 0.01]}}", "tune.space.optim.lr.uniform: lower bound 0.1 must be below upper bound 0.01"),
        ("{optim.lr: {loguniform: [0, 0.1]}}", "tune.space.optim.lr.loguniform: bounds must be > 0"),
        ("{train.epochs: {randint: [1.5, 4]}}", "tune.space.train.epochs.randint: bounds must be integers"),
        ("{model.width: {quniform: [8, 64]}}", "tune.space.model.width.quniform: expected 3 numbers"),
        ("{model.width: 16}", "tune.space.model.width: expected one of"),
        ("{tune.seed: {choice: [1, 2]}}", "the tune section itself cannot be searched"),
    ],
)
def test_space_grammar_errors_name_the_key(space: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"tune.space={space}"])
    assert message in str(err.value)


def test_space_parses_every_kind() -> None:
    params = parse_space({
        "optim.lr": {"loguniform": [1e-4, 1e-1]}, "model.dropout": {"uniform": [0.0, 0.5]},
        "model.width": {"quniform": [8, 64, 8]}, "train.epochs": {"randint": [2, 5]},
        "optim.name": {"choice": ["sgd", "adamw"]}, "train.batch_size": {"grid": [32, 64]},
    }, Config)
    assert [p.kind for p in params] == ["loguniform", "uniform", "quniform", "randint", "choice", "grid"]


def _cfg(*overrides: str):
    return load_config(None, list(overrides))


@pytest.mark.parametrize(
    ("overrides", "searcher", "scheduler", "sampler"),
    [
        (["train.epochs=5", "tune.num_samples=9", "tune.space={optim.lr: {loguniform: [0.0001, 0.1]}}"], "optuna", "optuna_hyperband", "tpe"),
        (["train.epochs=5", "tune.num_samples=9", "tune.reduction_factor=2.5", "tune.space={optim.lr: {loguniform: [0.0001, 0.1]}}"], "optuna", "asha", "tpe"),
        (["train.epochs=5", "tune.num_samples=10", "tune.space={optim.lr: {loguniform: [0.0001, 0.1]}}"], "optuna", "fifo", "gp"),
        (["train.epochs=5", "tune.num_samples=101", "tune.space={optim.lr: {loguniform: [0.0001, 0.1]}}"], "optuna", "optuna_hyperband", "tpe"),
        (["train.epochs=5", "tune.num_samples=30", "tune.space={optim.name: {choice: [sgd, adamw]}}"], "optuna", "optuna_hyperband", "tpe"),
        (["train.epochs=1", "tune.space={optim.lr: {loguniform: [0.0001, 0.1]}, model.dropout: {uniform: [0, 0.5]}}"], "optuna", "fifo", "gp"),
        (["train.epochs=1", "tune.num_samples=100", "tune.space={" + ", ".join(f"params.k{i}: {{uniform: [0, 1]}}" for i in range(10)) + "}"],
         "optuna", "fifo", "gp"),
        (["train.epochs=1", "tune.space={" + ", ".join(f"params.k{i}: {{uniform: [0, 1]}}" for i in range(11)) + "}"], "optuna", "fifo", "tpe"),
        (["train.epochs=1", "tune.num_samples=101", "tune.space={optim.lr: {loguniform: [0.0001, 0.1]}}"], "optuna", "fifo", "tpe"),
        (["train.epochs=1", "tune.space={optim.lr: {loguniform: [0.0001, 0.1]}, optim.name: {choice: [sgd, adamw]}}"], "optuna", "fifo", "gp"),
        (["train.epochs=1", "tune.sampler=cmaes", "tune.space={optim.lr: {loguniform: [0.0001, 0.1]}, model.dropout: {uniform: [0, 0.5]}}"],
         "optuna", "fifo", "cmaes"),
        (["train.epochs=5", "tune.low_cost={model.width: 8}", "tune.space={model.width: {randint: [8, 64]}}"], "blendsearch", "fifo", None),
    ],
    ids=["multi-fidelity", "multi-fidelity-fractional-eta", "multi-fidelity-gp", "multi-fidelity-many-trials", "multi-fidelity-categorical", "numeric", "numeric-10-keys-100-trials", "numeric-11-keys", "many-trials",
         "categorical", "sampler-set", "low-cost"],
)
def test_auto_rule(overrides: list[str], searcher: str, scheduler: str, sampler: str | None) -> None:
    cfg = _cfg(*overrides)
    params = parse_space(cfg.tune.space, Config)
    choice = auto_choice(params, cfg)
    check_compatible(choice, params, cfg)  # the rule never picks what the config then refuses
    assert (choice.searcher, choice.scheduler) == (searcher, scheduler)
    if sampler:
        assert choice.sampler == sampler
    assert choice.reason


@pytest.mark.parametrize(("scheduler", "searcher"), [("asha", "optuna"), ("median", "optuna"), ("fifo", "optuna"), ("pbt", "random"), ("pb2", "random")])
def test_auto_searcher_fits_a_configured_scheduler(scheduler: str, searcher: str) -> None:
    cfg = _cfg("train.epochs=5", f"tune.scheduler={scheduler}", "tune.space={optim.lr: {loguniform: [0.0001, 0.1]}}")
    params = parse_space(cfg.tune.space, Config)
    choice = resolve_choice(params, cfg)
    check_compatible(choice, params, cfg)
    assert (choice.searcher, choice.scheduler) == (searcher, scheduler)
    assert scheduler in choice.reason


@pytest.mark.parametrize(("epochs", "eta", "grace"), [(52, 3, 1), (10, 2, 1), (9, 3, 1), (100, 4, 2), (1, 3, 1)])
def test_optuna_hyperband_rungs_printed_are_the_pruners(epochs: int, eta: int, grace: int) -> None:
    import optuna

    from dltune.hpo.algorithms import build_scheduler, build_searcher, describe_rungs

    cfg = _cfg(f"train.epochs={epochs}", f"tune.reduction_factor={eta}", f"tune.grace_period={grace}", "tune.searcher=optuna",
               "tune.scheduler=optuna_hyperband", "tune.space={optim.lr: {loguniform: [0.0001, 0.1]}}")
    params = parse_space(cfg.tune.space, Config)
    choice = resolve_choice(params, cfg)
    pruner = build_searcher(choice, cfg, 1)._pruner
    pruner._try_initialization(optuna.create_study())
    # each bracket is a SuccessiveHalvingPruner checking trials at min_resource * eta**(rate + k)
    expected = [", ".join(str(p._min_resource * eta**k) for k in range(p._min_early_stopping_rate, 64) if p._min_resource * eta**k < epochs) or "none"
                for p in pruner._pruners]
    printed = describe_rungs(build_scheduler(choice, cfg, params), cfg)
    assert printed == f"optuna hyperband brackets (rung epochs): {'; '.join(expected)}; then {epochs} for those let through"



@pytest.mark.parametrize(("overrides", "message"), [
    (["tune.searcher=optuna", "tune.space={train.batch_size: {grid: [32, 64]}}"], "grid entries need tune.searcher=random or grid"),
    (["tune.searcher=optuna", "tune.scheduler=pbt"], "pbt explores by itself"),
    (["tune.searcher=random", "tune.scheduler=optuna_hyperband"], "optuna_hyperband prunes through the Optuna study; use tune.searcher=optuna"),
    (["tune.searcher=optuna", "tune.scheduler=optuna_hyperband", "tune.reduction_factor=2.5"], "tune.reduction_factor: optuna_hyperband"),
])
def test_incompatible_combinations_are_refused(overrides: list[str], message: str) -> None:
    cfg = _cfg("tune.space={optim.lr: {uniform: [0.001, 0.1]}}", *overrides)
    params = parse_space(cfg.tune.space, Config)
    with pytest.raises(ConfigError, match=message):
        check_compatible(resolve_choice(params, cfg), params, cfg)


@pytest.mark.parametrize(("overrides", "message"), [
    (["tune.searcher=optuna", "tune.sampler=cmaes"], r"tune.sampler: cmaes needs the cmaes package, which is not installed here \(pip install cmaes\)"),
    (["tune.searcher=bohb"], r"tune.searcher: bohb needs the hpbandster package, .* \(pip install hpbandster\)"),
    (["tune.scheduler=pb2"], r"tune.scheduler: pb2 needs the sklearn package, .* \(pip install scikit-learn\)"),
    (["tune.searcher=smac"], r"tune.searcher: smac needs the smac package, .* \(pip install smac\)"),
])
def test_a_method_whose_package_is_missing_is_refused_at_check_time(monkeypatch: pytest.MonkeyPatch, overrides: list[str], message: str) -> None:
    import importlib.util

    from dltune.hpo import algorithms

    real = importlib.util.find_spec
    monkeypatch.setattr(algorithms.importlib.util, "find_spec",
                        lambda name, *a: None if name in ("cmaes", "hpbandster", "sklearn", "smac") else real(name, *a))
    cfg = _cfg("train.epochs=3", "tune.space={optim.lr: {uniform: [0.001, 0.1]}}", *overrides)
    params = parse_space(cfg.tune.space, Config)
    with pytest.raises(ConfigError, match=message):
        check_compatible(resolve_choice(params, cfg), params, cfg)


def test_the_gp_sampler_auto_picks_is_built_without_optunas_experimental_warning(recwarn: pytest.WarningsRecorder) -> None:
    from dltune.hpo.algorithms import build_searcher

    cfg = _cfg("train.epochs=1", "tune.space={optim.lr: {loguniform: [0.0001, 0.1]}}")
    choice = resolve_choice(parse_space(cfg.tune.space, Config), cfg)
    assert choice.sampler == "gp"
    build_searcher(choice, cfg, 1)
    assert not [str(w.message) for w in recwarn if "experimental" in str(w.message)]


def test_every_built_in_method_s_packages_are_dependencies() -> None:
    from dltune.hpo.algorithms import PIP_NAMES, REQUIRES, SAMPLER_REQUIRES, SAMPLERS, SCHEDULERS, SEARCHERS

    assert set(REQUIRES) <= set(SEARCHERS) | set(SCHEDULERS)
    assert set(SAMPLER_REQUIRES) <= set(SAMPLERS)
    dependencies = " ".join(__import__("tomllib").loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]["dependencies"]).lower()
    for module in {m for modules in [*REQUIRES.values(), *SAMPLER_REQUIRES.values()] for m in modules}:
        assert PIP_NAMES.get(module, module).lower() in dependencies, module


def test_resource_plan_concurrency_and_refusal() -> None:
    cfg = _cfg("scaling.launcher=ray", "scaling.num_workers=2", "scaling.cpus_per_worker=2")
    plan = plan_resources(cfg, {"CPU": 9.0, "memory": 8e9}, num_trials=10)
    assert plan.per_trial["CPU"] == 4.0 and plan.concurrency == 2 and plan.uses_train_controller
    assert plan.driver.get("CPU", 0.0) == 0.0  # the driver never holds a CPU its workers need
    single = plan_resources(_cfg("scaling.use_gpu=true", "scaling.gpus_per_worker=0.25"), {"CPU": 8.0, "GPU": 1.0}, num_trials=10)
    assert single.concurrency == 4 and not single.uses_train_controller  # 4 quarter-GPU trials share one GPU
    with pytest.raises(ResourcePlanError, match="one trial needs GPU 1 .* but the cluster has GPU 0"):
        plan_resources(_cfg("scaling.use_gpu=true"), {"CPU": 8.0}, num_trials=2)
    capped = plan_resources(_cfg("tune.max_concurrent_trials=8"), {"CPU": 2.0}, num_trials=10)
    assert capped.concurrency == 2 and "lowered to 2" in capped.notes[0]


def test_impossible_plan_is_refused_before_ray_starts_from_the_cli(tmp_path) -> None:
    proc = run_cli("tune", "configs/quickstart_tune.yaml", f"output.dir={tmp_path}", "scaling.launcher=ray", "scaling.num_workers=4", "tune.local_cpus=2", env={"RAY_ADDRESS": ""})
    assert proc.returncode == 2
    assert proc.stderr.strip() == "dltune: error: resource plan: one trial needs CPU 4 (4 worker(s) x 1 CPU) but the cluster has CPU 2"
    assert not (tmp_path / "quickstart_tune").exists()  # not even the experiment's ray.log: no Ray was started


def test_check_prints_the_search_plan() -> None:
    proc = run_cli("check", "configs/quickstart_tune.yaml", "tune.local_cpus=4")
    assert proc.returncode == 0, proc.stderr
    assert "search: optuna (tpe) + asha" in proc.stdout and "concurrent trials: 4" in proc.stdout


def test_trial_config_takes_numpy_values_from_searchers() -> None:
    import numpy as np

    from dltune.hpo.trial import trial_config
    from dltune.schema import to_mapping

    cfg = trial_config(to_mapping(Config()), {"model.width": np.int64(16), "optim.lr": np.float64(0.01), "model.hidden": [np.int64(64), np.int64(32)]})
    assert cfg.model.width == 16 and type(cfg.model.width) is int
    assert cfg.model.hidden == [64, 32] and all(type(h) is int for h in cfg.model.hidden)


def test_pbt_never_mutates_the_models_shape() -> None:
    from dltune.hpo.algorithms import mutations

    cfg = load_config(None, ["tune.scheduler=pbt", "tune.space={optim.lr: {loguniform: [0.001, 0.1]}, model.width: {choice: [8, 16]}, model.dropout: {uniform: [0.0, 0.3]}}"])
    assert [p.key for p in mutations(parse_space(cfg.tune.space, Config), cfg.tune)] == ["optim.lr", "model.dropout"]
    bad = load_config(None, ["tune.scheduler=pbt", "tune.space={optim.lr: {loguniform: [0.001, 0.1]}}", "tune.mutations={model.width: {choice: [8, 16]}}"])
    with pytest.raises(ConfigError, match="tune.mutations.model.width"):
        mutations(parse_space(bad.tune.space, Config), bad.tune)


def test_a_config_error_is_as_quick_under_tune_as_under_train() -> None:
    """The config is checked before Ray is imported: the same bad key costs `tune` what it costs `train`
    (a ratio of the two, best of two runs each, since this machine's load varies)."""
    def quickest(command: str) -> float:
        times = []
        for _ in range(2):
            started = time.perf_counter()
            proc = run_cli(command, "configs/quickstart_tune.yaml", "train.epochs=abc")
            times.append(time.perf_counter() - started)
            assert proc.returncode == 2 and proc.stderr.strip() == "dltune: error: train.epochs: expected an integer, got 'abc'", proc.stderr
        return min(times)

    assert quickest("tune") <= 3 * quickest("train")


@pytest.mark.parametrize(("searcher", "limit", "warned"), [("random", "1", True), ("grid", "2", True), ("random", "auto", False), ("bohb", "1", False)])
def test_a_concurrency_limit_that_starves_hyperbands_brackets_is_warned_of(searcher: str, limit: str, warned: bool) -> None:
    from dltune.hpo.search_plan import make_plan

    space = "{optim.lr: {grid: [0.01, 0.1]}}" if searcher == "grid" else "{optim.lr: {loguniform: [0.001, 0.1]}}"
    cfg = load_config(None, [f"tune.space={space}", f"tune.searcher={searcher}", "tune.scheduler=hyperband", f"tune.max_concurrent_trials={limit}"])
    plan = make_plan(cfg, {"CPU": 4.0, "GPU": 0.0})
    line = f"warning: tune.max_concurrent_trials={limit} with hyperband: the {searcher} searcher then creates each trial only as a slot frees"
    assert any(w.startswith(line) for w in plan.warnings()) is warned and (line in plan.describe()) is warned


@pytest.mark.parametrize(("overrides", "startup"), [([], 3), (["tune.searcher_kwargs={n_startup_trials: 7}"], 7)])
def test_autos_gp_starts_modelling_after_3_random_trials_unless_told_otherwise(overrides: list[str], startup: int) -> None:
    from dltune.hpo.algorithms import build_searcher

    cfg = _cfg("train.epochs=5", "tune.num_samples=30", "tune.space={optim.lr: {loguniform: [0.0001, 0.1]}}", *overrides)
    choice = resolve_choice(parse_space(cfg.tune.space, Config), cfg)
    assert choice.sampler == "gp" and "after 3 random start-up trials" in choice.reason
    assert build_searcher(choice, cfg, 1)._sampler._n_startup_trials == startup
