"""Searchers and schedulers by name or import path, and the ``auto`` rule that picks them.

The registries below are the one source of valid names (the config takes any
string; ``check_names`` refuses an unknown one before anything starts).
Fidelity is the epoch: every scheduler's time attribute is the ``epoch``
metric each report carries (it survives PBT restores, unlike a per-process
iteration count).
"""
from __future__ import annotations

import importlib.util
import inspect
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dltune import plugins, schema
from dltune.config import Config, TuneConfig
from dltune.errors import ConfigError
from dltune.space import Param, parse_space

TIME_ATTR = "epoch"
# Optuna's GP-based BO on full runs won both LCBench tables (7 numeric keys, 10 and 30 full runs
# of compute) once its random start-up is cut from Optuna's 10 trials to 3: with 10 it had barely
# begun at 10 full runs. It refits its GP on every finished trial, a cost that grows with the
# trials (0.8 s per trial at 30 here); outside these bounds it is unmeasured or slow, and TPE takes over.
# With several trials at once it needs its constant liar (dltune.ray_compat.optuna_gp): without
# it, a trial asked while others ran often landed next to one of them; with it, 4 slots at 30
# full runs went from 0.141 to 0.056.
GP_MIN_TRIALS = 10
GP_MAX_TRIALS = 100
GP_MAX_KEYS = 10
GP_STARTUP = {"n_startup_trials": 3}


@dataclass
class Choice:
    searcher: str  # a registry name or an import path
    scheduler: str
    sampler: str
    reason: str
    # The rule's own constructor arguments for the searcher; tune.searcher_kwargs override them.
    searcher_kwargs: dict[str, Any] = field(default_factory=dict)


def auto_choice(params: list[Param], cfg: Config) -> Choice:
    """The rule documented in docs/tuning.md, most specific first."""
    t = cfg.tune
    epochs = cfg.train.epochs
    if t.low_cost:
        return Choice("blendsearch", "fifo", t.sampler, "a low-cost starting point (tune.low_cost) is given: BlendSearch starts there and widens")
    if any(p.kind == "grid" for p in params):
        return Choice("random", "asha" if epochs > 1 else "fifo", t.sampler, "the space has grid entries, which only the variant generator enumerates")
    categorical = any(p.kind == "choice" for p in params)
    numeric = not categorical and len(params) <= GP_MAX_KEYS
    if epochs > 1:
        # bench/lcbench_search.py (docs/tuning.md has the table): GP on full runs, where it has the
        # trials to act, beat every early-stopping method; TPE with Optuna's HyperbandPruner ranked
        # best of those, and BOHB below random + ASHA.
        if numeric and GP_MIN_TRIALS <= t.num_samples <= GP_MAX_TRIALS and t.sampler == "tpe":
            return Choice("optuna", "fifo", "gp", f"{t.num_samples} trials of {len(params)} numeric keys: Optuna's GP-based BO on full runs "
                          "after 3 random start-up trials, no early stopping", dict(GP_STARTUP))
        signal = f"epochs are a multi-fidelity signal ({epochs} epochs): Optuna {t.sampler.upper()}"
        if not float(t.reduction_factor).is_integer():  # Optuna's HyperbandPruner takes whole numbers only
            return Choice("optuna", "asha", t.sampler, f"{signal} with ASHA (tune.reduction_factor={t.reduction_factor:g} is not the whole number Optuna's HyperbandPruner needs)")
        return Choice("optuna", "optuna_hyperband", t.sampler, f"{signal} with Optuna's HyperbandPruner")
    # Single fidelity: bench/lcbench_search.py --single-fidelity (numeric) and bench/table_search.py
    # (categorical; docs/tuning.md has the tables).
    if t.sampler != "tpe":
        return Choice("optuna", "fifo", t.sampler, f"single-fidelity: Optuna with tune.sampler={t.sampler} as configured")
    if len(params) > GP_MAX_KEYS:
        return Choice("optuna", "fifo", "tpe", f"single-fidelity, {len(params)} keys (more than {GP_MAX_KEYS}): Optuna TPE")
    if t.num_samples > GP_MAX_TRIALS:
        return Choice("optuna", "fifo", "tpe", f"single-fidelity, {t.num_samples} trials (more than {GP_MAX_TRIALS}, too many to refit a GP on each): Optuna TPE")
    kinds = "keys, some categorical" if categorical else "numeric keys"
    return Choice("optuna", "fifo", "gp", f"single-fidelity, {len(params)} {kinds}, {t.num_samples} trials: Optuna GP-based BO "
                  "after 3 random start-up trials", dict(GP_STARTUP))


def resolve_choice(params: list[Param], cfg: Config) -> Choice:
    t = cfg.tune
    check_names(t)
    if t.searcher == "auto":
        if t.scheduler in ("pbt", "pb2"):
            return Choice("random", t.scheduler, t.sampler, f"{t.scheduler} explores by itself: random starting points")
        choice = auto_choice(params, cfg)
        if t.scheduler != "auto" and t.scheduler != choice.scheduler:
            choice.reason += f"; tune.scheduler={t.scheduler} as configured, in place of the rule's {choice.scheduler}"
            choice.scheduler = t.scheduler
        return choice
    scheduler = t.scheduler
    if scheduler == "auto":
        scheduler = {"bohb": "hyperband", "smac": "smac_hyperband" if cfg.train.epochs > t.grace_period else "fifo"}.get(t.searcher, "fifo")
    return Choice(t.searcher, scheduler, t.sampler, "as configured")


def check_names(t: TuneConfig) -> None:
    """Refuse an unknown name, or an import path that is not the right kind of class."""
    for key, name, registry in (("tune.searcher", t.searcher, SEARCHERS), ("tune.scheduler", t.scheduler, SCHEDULERS)):
        if plugins.is_import_path(name):
            plugin_class(key, name)
        elif name != "auto" and name not in registry:
            raise ConfigError(f"{key}: {name!r} is not one of auto, {', '.join(registry)}, or a 'package.module:Class'{schema.near(name, tuple(registry))}")
    if t.sampler not in SAMPLERS:
        raise ConfigError(f"tune.sampler: {t.sampler!r} is not one of {', '.join(SAMPLERS)}{schema.near(t.sampler, tuple(SAMPLERS))}")



def plugin_class(key: str, path: str) -> tuple[str, type]:
    """(kind, class) of a user searcher or scheduler: 'searcher' / 'sampler' (Optuna) / 'scheduler'."""
    cls = plugins.resolve(key, path)
    if isinstance(cls, type):
        if key == "tune.scheduler":
            from ray.tune.schedulers import TrialScheduler

            if issubclass(cls, TrialScheduler):
                return "scheduler", cls
        else:
            import optuna
            from ray.tune.search import Searcher

            if issubclass(cls, Searcher):
                return "searcher", cls
            if issubclass(cls, optuna.samplers.BaseSampler):
                return "sampler", cls
    wanted = "a ray.tune.schedulers.TrialScheduler subclass" if key == "tune.scheduler" else "a ray.tune.search.Searcher or optuna.samplers.BaseSampler subclass"
    raise ConfigError(f"{key}: {path} is not {wanted}")


# The packages each built-in method imports when its trials start (all of them dltune dependencies;
# an environment installed without them is told at check time, not by a traceback from the driver).
REQUIRES = {"optuna": ("optuna",), "hyperopt": ("hyperopt",), "blendsearch": ("flaml", "optuna"), "cfo": ("flaml",),
            "bohb": ("hpbandster", "ConfigSpace"), "smac": ("smac", "ConfigSpace"), "smac_hyperband": ("smac",), "optuna_hyperband": ("optuna",), "pb2": ("sklearn",)}
SAMPLER_REQUIRES = {"cmaes": ("cmaes",), "gp": ("torch", "scipy")}
PIP_NAMES = {"sklearn": "scikit-learn"}


def check_packages(choice: Choice) -> None:
    needs = [("tune.searcher", choice.searcher, REQUIRES), ("tune.scheduler", choice.scheduler, REQUIRES)]
    if choice.searcher == "optuna":
        needs.append(("tune.sampler", choice.sampler, SAMPLER_REQUIRES))
    for key, name, registry in needs:
        for module in registry.get(name, ()):
            if importlib.util.find_spec(module) is None:
                raise ConfigError(f"{key}: {name} needs the {module} package, which is not installed here (pip install {PIP_NAMES.get(module, module)})")


def check_compatible(choice: Choice, params: list[Param], cfg: Config) -> None:
    check_packages(choice)
    grids = [p.key for p in params if p.kind == "grid"]
    if grids and choice.searcher not in ("random", "grid"):
        raise ConfigError(f"tune.space.{grids[0]}: grid entries need tune.searcher=random or grid, not {choice.searcher}")
    if choice.searcher == "grid":
        continuous = [p.key for p in params if p.kind not in ("grid", "choice")]
        if continuous:
            raise ConfigError(f"tune.space.{continuous[0]}: the grid searcher takes only grid/choice entries")
    if choice.searcher == "bohb" and choice.scheduler != "hyperband":
        raise ConfigError("tune.scheduler: bohb runs with its own HyperBand; use scheduler hyperband or auto")
    if choice.scheduler == "optuna_hyperband":
        if choice.searcher != "optuna" and not (plugins.is_import_path(choice.searcher) and plugin_class("tune.searcher", choice.searcher)[0] == "sampler"):
            raise ConfigError(f"tune.scheduler: optuna_hyperband prunes through the Optuna study; use tune.searcher=optuna (or an Optuna sampler class), not {choice.searcher}")
        if not float(cfg.tune.reduction_factor).is_integer():
            raise ConfigError(f"tune.reduction_factor: optuna_hyperband (Optuna's HyperbandPruner) takes a whole number, not {cfg.tune.reduction_factor:g}")
    if choice.searcher == "smac" and choice.scheduler not in ("smac_hyperband", "fifo"):
        raise ConfigError("tune.scheduler: smac decides each trial's epochs with its own Hyperband; use scheduler smac_hyperband (or auto), or fifo for full runs")
    if choice.scheduler == "smac_hyperband":
        if choice.searcher != "smac":
            raise ConfigError(f"tune.scheduler: smac_hyperband runs the epochs SMAC asks for; use tune.searcher=smac, not {choice.searcher}")
        if cfg.train.epochs <= cfg.tune.grace_period:
            raise ConfigError(f"tune.scheduler: smac_hyperband needs train.epochs above tune.grace_period ({cfg.tune.grace_period}), its smallest budget; use fifo")
        if not float(cfg.tune.reduction_factor).is_integer():
            raise ConfigError(f"tune.reduction_factor: smac_hyperband (SMAC's Hyperband) takes a whole number, not {cfg.tune.reduction_factor:g}")
    if choice.scheduler in ("pbt", "pb2") and choice.searcher not in ("random", "grid"):
        raise ConfigError(f"tune.searcher: {choice.scheduler} explores by itself; use tune.searcher=random (or auto)")


def to_tune(param: Param) -> Any:
    """The Ray Tune sampler for one parameter."""
    from ray import tune

    a = param.args
    if param.kind == "uniform":
        return tune.uniform(a[0], a[1])
    if param.kind == "loguniform":
        return tune.loguniform(a[0], a[1])
    if param.kind == "quniform":
        return tune.quniform(a[0], a[1], a[2])
    if param.kind == "randint":
        return tune.randint(int(a[0]), int(a[1]) + 1)  # our bounds are inclusive, Ray's upper is not
    if param.kind == "lograndint":
        return tune.lograndint(int(a[0]), int(a[1]) + 1)
    if param.kind == "choice":
        return tune.choice(list(a))
    return tune.grid_search(list(a))


def param_space(params: list[Param], choice: Choice) -> dict[str, Any]:
    from ray import tune

    space = {}
    for p in params:
        if choice.searcher == "grid" and p.kind == "choice":
            space[p.key] = tune.grid_search(list(p.args))
        else:
            space[p.key] = to_tune(p)
    return space


def _construct(key: str, cls: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        name = getattr(cls, "__qualname__", str(cls))
        raise ConfigError(f"{key}_kwargs: {name} refused {sorted(kwargs)}: {exc}") from exc


# --- searchers: (choice, config, concurrency) -> Ray Tune search algorithm -------------------

def _variant_generator(choice: Choice, cfg: Config, concurrency: int) -> Any:
    from ray.tune.search.basic_variant import BasicVariantGenerator

    t = cfg.tune
    # Tune's max_concurrent_trials does not reach the variant generator; it takes its own limit.
    # Synchronous HyperBand halves a bracket once all its trials reach the rung: trials created
    # only as slots free would each meet the rung alone and all go through, so it gets them all
    # at once (the cluster's slots still bound how many run) unless a limit is set.
    eager = choice.scheduler == "hyperband" and t.max_concurrent_trials == "auto"
    return _construct("tune.searcher", BasicVariantGenerator, {"random_state": t.seed, "max_concurrent": 0 if eager else concurrency, **t.searcher_kwargs})


def _optuna(choice: Choice, cfg: Config, concurrency: int) -> Any:
    import optuna

    t = cfg.tune
    with warnings.catch_warnings():  # Optuna 3.6 marks GPSampler experimental; auto picks it on measurements (docs/tuning.md)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = _construct("tune.searcher", _sampler_class(choice.sampler), {"seed": t.seed, **choice.searcher_kwargs, **t.searcher_kwargs})
    return _optuna_search(sampler, choice, cfg)


def _sampler_class(name: str) -> type:
    import optuna

    if name == "gp":  # Optuna's GPSampler, with a constant liar for concurrent trials
        from dltune.ray_compat.optuna_gp import ConstantLiarGPSampler

        return ConstantLiarGPSampler
    return getattr(optuna.samplers, SAMPLERS[name])


def _optuna_search(sampler: Any, choice: Choice, cfg: Config) -> Any:
    """Ray's Optuna adapter, fidelity-aware; with the optuna_hyperband scheduler its study prunes by Optuna's HyperbandPruner."""
    import optuna

    from dltune.ray_compat.optuna_search import FidelityAwareOptunaSearch

    pruner = None
    if choice.scheduler == "optuna_hyperband":
        t = cfg.tune
        pruner = optuna.pruners.HyperbandPruner(min_resource=min(t.grace_period, cfg.train.epochs), max_resource=cfg.train.epochs,
                                                reduction_factor=int(t.reduction_factor))
    return FidelityAwareOptunaSearch(sampler=sampler, time_attr=TIME_ATTR, full_fidelity=cfg.train.epochs, pruner=pruner)


def _hyperopt(choice: Choice, cfg: Config, concurrency: int) -> Any:
    from ray.tune.search.hyperopt import HyperOptSearch

    t = cfg.tune
    return _construct("tune.searcher", HyperOptSearch, {"random_state_seed": t.seed, **t.searcher_kwargs})


def _flaml(choice: Choice, cfg: Config, concurrency: int) -> Any:
    import flaml

    t = cfg.tune
    cls = flaml.BlendSearch if choice.searcher == "blendsearch" else flaml.CFO
    return _construct("tune.searcher", cls, {"low_cost_partial_config": dict(t.low_cost) or None, "seed": t.seed, **t.searcher_kwargs})


def _bohb(choice: Choice, cfg: Config, concurrency: int) -> Any:
    from dltune.ray_compat.searcher_history import RecordingBOHB

    t = cfg.tune
    return _construct("tune.searcher", RecordingBOHB, {"time_attr": TIME_ATTR, "seed": t.seed, **t.searcher_kwargs})


def _smac(choice: Choice, cfg: Config, concurrency: int) -> Any:
    from dltune.hpo.smac_search import SmacSearch

    t, epochs = cfg.tune, cfg.train.epochs
    multi = choice.scheduler == "smac_hyperband"
    return _construct("tune.searcher", SmacSearch, {"params": parse_space(t.space, Config), "time_attr": TIME_ATTR, "epochs": epochs, "seed": t.seed, "num_samples": t.num_samples,
                                                    "min_epochs": min(t.grace_period, epochs) if multi else epochs, "eta": int(t.reduction_factor),
                                                    **t.searcher_kwargs})


SEARCHERS: dict[str, Callable[[Choice, Config, int], Any]] = {
    "random": _variant_generator,
    "grid": _variant_generator,
    "optuna": _optuna,
    "hyperopt": _hyperopt,
    "blendsearch": _flaml,
    "cfo": _flaml,
    "bohb": _bohb,
    "smac": _smac,
}
SAMPLERS = {"tpe": "TPESampler", "cmaes": "CmaEsSampler", "gp": "GPSampler"}  # optuna.samplers class names


def build_searcher(choice: Choice, cfg: Config, concurrency: int) -> Any:
    if choice.searcher in SEARCHERS:
        return SEARCHERS[choice.searcher](choice, cfg, concurrency)
    kind, cls = plugin_class("tune.searcher", choice.searcher)
    if kind == "searcher":
        return _construct("tune.searcher", cls, dict(cfg.tune.searcher_kwargs))
    return _optuna_search(_construct("tune.searcher", cls, dict(cfg.tune.searcher_kwargs)), choice, cfg)


# --- schedulers: (choice, config, params) -> Ray Tune trial scheduler ------------------------

def _changes_shapes(key: str) -> bool:
    """Keys that change the model's weights' shapes or the data it sees (dropout does neither)."""
    return key.startswith("data.") or (key.startswith("model.") and key != "model.dropout")


def mutations(params: list[Param], t: TuneConfig) -> list[Param]:
    """What PBT/PB2 may change in an exploited trial, which continues from the donor's weights:
    by default every key of the space that leaves the weights' shapes alone (the others are
    sampled per trial and copied from the donor with its weights)."""
    if not t.mutations:
        return [p for p in params if not _changes_shapes(p.key)]
    chosen = parse_space(t.mutations, Config, "tune.mutations")
    for p in chosen:
        if _changes_shapes(p.key):
            raise ConfigError(f"tune.mutations.{p.key}: an exploited trial continues from the donor's weights, so it cannot change "
                              "the model or data; search it in tune.space only")
    return chosen


def _scheduler(cls: Callable[..., Any], t: TuneConfig, **defaults: Any) -> Any:
    return _construct("tune.scheduler", cls, {**defaults, **t.scheduler_kwargs})


def _fifo(choice: Choice, cfg: Config, params: list[Param]) -> Any:
    from ray.tune import schedulers

    return _scheduler(schedulers.FIFOScheduler, cfg.tune)


def _asha(choice: Choice, cfg: Config, params: list[Param]) -> Any:
    from ray.tune import schedulers

    t, epochs = cfg.tune, cfg.train.epochs
    return _scheduler(schedulers.ASHAScheduler, t, time_attr=TIME_ATTR, max_t=epochs, grace_period=min(t.grace_period, epochs), reduction_factor=t.reduction_factor)


def _hyperband(choice: Choice, cfg: Config, params: list[Param]) -> Any:
    from dltune.ray_compat import schedulers

    # Ray's own HyperBand rounds its budgets down: most brackets would end short of train.epochs.
    cls = schedulers.FullFidelityHyperBandForBOHB if choice.searcher == "bohb" else schedulers.FullFidelityHyperBand
    return _scheduler(cls, cfg.tune, time_attr=TIME_ATTR, max_t=cfg.train.epochs, reduction_factor=cfg.tune.reduction_factor)


def _median(choice: Choice, cfg: Config, params: list[Param]) -> Any:
    from ray.tune import schedulers

    return _scheduler(schedulers.MedianStoppingRule, cfg.tune, time_attr=TIME_ATTR, grace_period=cfg.tune.grace_period, min_samples_required=2)


def _optuna_pruning(choice: Choice, cfg: Config, params: list[Param]) -> Any:
    from dltune.ray_compat.optuna_search import OptunaPruning

    return _scheduler(OptunaPruning, cfg.tune)


def _pbt(choice: Choice, cfg: Config, params: list[Param]) -> Any:
    from dltune.hpo.exploits import SafePBT

    t = cfg.tune
    mutated = mutations(params, t)
    if not mutated:
        raise ConfigError("tune.mutations: pbt needs at least one key to mutate (or a tune.space key outside model.* and data.*)")
    return _scheduler(SafePBT, t, time_attr=TIME_ATTR, perturbation_interval=t.perturbation_interval,
                      hyperparam_mutations={p.key: list(p.args) if p.kind in ("choice", "grid") else to_tune(p) for p in mutated},
                      quantile_fraction=t.quantile_fraction, resample_probability=t.resample_probability, synch=t.synch)


def _pb2(choice: Choice, cfg: Config, params: list[Param]) -> Any:
    from dltune.hpo.exploits import SafePB2

    t = cfg.tune
    bounds = {p.key: list(p.numeric_range) for p in mutations(params, t) if p.numeric_range is not None}
    if not bounds:
        raise ConfigError("tune.mutations: pb2 needs numeric entries (uniform, loguniform, quniform, randint, lograndint) to bound its search")
    return _scheduler(SafePB2, t, time_attr=TIME_ATTR, perturbation_interval=t.perturbation_interval, hyperparam_bounds=bounds,
                      quantile_fraction=t.quantile_fraction, synch=t.synch)


def _smac_budgets(choice: Choice, cfg: Config, params: list[Param]) -> Any:
    from dltune.hpo.smac_search import SmacBudgets

    return _scheduler(SmacBudgets, cfg.tune, time_attr=TIME_ATTR)


SCHEDULERS: dict[str, Callable[[Choice, Config, list[Param]], Any]] = {
    "fifo": _fifo,
    "asha": _asha,
    "hyperband": _hyperband,
    "median": _median,
    "optuna_hyperband": _optuna_pruning,
    "smac_hyperband": _smac_budgets,
    "pbt": _pbt,
    "pb2": _pb2,
}


def build_scheduler(choice: Choice, cfg: Config, params: list[Param]) -> Any:
    if choice.scheduler in SCHEDULERS:
        return SCHEDULERS[choice.scheduler](choice, cfg, params)
    _, cls = plugin_class("tune.scheduler", choice.scheduler)
    accepted = inspect.signature(cls).parameters
    defaults = {k: v for k, v in (("time_attr", TIME_ATTR), ("max_t", cfg.train.epochs)) if k in accepted}
    return _scheduler(cls, cfg.tune, **defaults)


def describe_rungs(scheduler: Any, cfg: Config) -> str | None:
    """Where the scheduler may stop a trial, for the plan's printout: HyperBand's brackets as
    its trials and rung epochs (the last rung is always train.epochs), ASHA's rungs, and the
    rungs of Optuna's HyperbandPruner's brackets (the study spreads trials over them)."""
    from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler

    from dltune.hpo.smac_search import SmacBudgets, epochs_of, smac_budgets
    from dltune.ray_compat.optuna_search import OptunaPruning
    from dltune.ray_compat.schedulers import hyperband_brackets

    if isinstance(scheduler, HyperBandScheduler):
        brackets = "; ".join(f"{n} trial{'s' if n != 1 else ''} at {', '.join(map(str, rungs))}" for n, rungs in hyperband_brackets(scheduler))
        return f"hyperband brackets (epochs): {brackets}"
    if isinstance(scheduler, ASHAScheduler):
        t, epochs = cfg.tune, cfg.train.epochs
        grace = min(t.grace_period, epochs)
        # a trial meets a rung at the first epoch at or past it
        rungs = [f"{math.ceil(r - 1e-9)}" for r in (grace * t.reduction_factor**k for k in range(int(math.log(epochs / grace, t.reduction_factor) + 1 + 1e-9))) if r < epochs]
        if not rungs:
            return f"asha: no rung below train.epochs={epochs}, so no trial is stopped early"
        return f"asha rungs (epochs): {', '.join(rungs)}, then {epochs} for those let through"
    if isinstance(scheduler, OptunaPruning):
        epochs, eta = cfg.train.epochs, int(cfg.tune.reduction_factor)
        low = min(cfg.tune.grace_period, epochs)
        # Optuna's own arithmetic: floor(log_eta(max / min)) + 1 brackets; bracket b checks a
        # trial at low * eta**(b + k) epochs
        brackets = [[low * eta**k for k in range(b, 64) if low * eta**k < epochs] for b in range(int(math.log(epochs / low, eta) + 1e-9) + 1)]
        return "optuna hyperband brackets (rung epochs): " + "; ".join(", ".join(map(str, rungs)) or "none" for rungs in brackets) + f"; then {epochs} for those let through"
    if isinstance(scheduler, SmacBudgets):
        epochs = cfg.train.epochs
        budgets = smac_budgets(epochs, min(cfg.tune.grace_period, epochs), int(cfg.tune.reduction_factor))
        return "smac hyperband budgets (epochs): " + ", ".join(str(epochs_of(b)) for b in budgets)
    return None


def uses_checkpoint_exploits(choice: Choice) -> bool:
    return choice.scheduler in ("pbt", "pb2")
