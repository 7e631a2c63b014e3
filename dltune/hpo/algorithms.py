"""Searchers and schedulers by name, and the ``auto`` rule that picks them.

Fidelity is the epoch: every scheduler's time attribute is the ``epoch``
metric the training loop reports (it survives PBT restores, unlike a
per-process iteration count).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dltune.config import Config, TuneConfig
from dltune.errors import ConfigError
from dltune.hpo.space import Param, to_tune

TIME_ATTR = "epoch"
CHEAP_TRIALS = 100  # more trials than this: each one is cheap enough for CMA-ES
LOW_DIMENSIONAL = 5


@dataclass
class Choice:
    searcher: str
    scheduler: str
    sampler: str
    reason: str


def auto_choice(params: list[Param], cfg: Config) -> Choice:
    """The rule documented in docs/tuning.md, most specific first."""
    t = cfg.tune
    epochs = cfg.train.epochs
    if t.low_cost:
        return Choice("blendsearch", "fifo", t.sampler, "a low-cost starting point (tune.low_cost) is given: BlendSearch starts there and widens")
    if any(p.kind == "grid" for p in params):
        return Choice("random", "asha" if epochs > 1 else "fifo", t.sampler, "the space has grid entries, which only the variant generator enumerates")
    if epochs > 1:
        return Choice("bohb", "hyperband", t.sampler, f"epochs are a multi-fidelity signal ({epochs} epochs): BOHB with its HyperBand scheduler")
    categorical = any(p.kind == "choice" for p in params)
    continuous = all(p.kind in ("uniform", "loguniform", "quniform", "randint") for p in params)
    if categorical or len(params) > LOW_DIMENSIONAL:
        return Choice("optuna", "fifo", "tpe", f"single-fidelity, {'categorical' if categorical else 'high-dimensional'} space ({len(params)} keys): Optuna TPE")
    if continuous and t.num_samples > CHEAP_TRIALS:
        return Choice("optuna", "fifo", "cmaes", f"single-fidelity, continuous space, many cheap trials ({t.num_samples}): Optuna CMA-ES")
    return Choice("optuna", "fifo", "gp", f"single-fidelity, low-dimensional continuous space ({len(params)} keys), few expensive trials: Optuna GP-based BO")


def resolve_choice(params: list[Param], cfg: Config) -> Choice:
    t = cfg.tune
    if t.searcher == "auto":
        choice = auto_choice(params, cfg)
        if t.scheduler != "auto":
            choice.scheduler = t.scheduler
        return choice
    scheduler = t.scheduler
    if scheduler == "auto":
        scheduler = "hyperband" if t.searcher == "bohb" else "fifo"
    return Choice(t.searcher, scheduler, t.sampler, "as configured")


def check_compatible(choice: Choice, params: list[Param]) -> None:
    grids = [p.key for p in params if p.kind == "grid"]
    if grids and choice.searcher not in ("random", "grid"):
        raise ConfigError(f"tune.space.{grids[0]}: grid entries need tune.searcher=random or grid, not {choice.searcher}")
    if choice.searcher == "grid":
        continuous = [p.key for p in params if p.kind not in ("grid", "choice")]
        if continuous:
            raise ConfigError(f"tune.space.{continuous[0]}: the grid searcher takes only grid/choice entries")
    if choice.searcher == "bohb" and choice.scheduler != "hyperband":
        raise ConfigError("tune.scheduler: bohb runs with its own HyperBand; use scheduler hyperband or auto")
    if choice.scheduler in ("pbt", "pb2") and choice.searcher not in ("random", "grid"):
        raise ConfigError(f"tune.searcher: {choice.scheduler} explores by itself; use tune.searcher=random (or auto)")


def param_space(params: list[Param], choice: Choice) -> dict[str, Any]:
    from ray import tune

    space = {}
    for p in params:
        if choice.searcher == "grid" and p.kind == "choice":
            space[p.key] = tune.grid_search(list(p.args))
        else:
            space[p.key] = to_tune(p)
    return space


def build_searcher(choice: Choice, t: TuneConfig, concurrency: int) -> Any:
    name = choice.searcher
    if name in ("random", "grid"):
        from ray.tune.search.basic_variant import BasicVariantGenerator

        # Tune's max_concurrent_trials does not reach the variant generator; it takes its own limit.
        return BasicVariantGenerator(random_state=t.seed, max_concurrent=concurrency)
    if name == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)

        samplers = {"tpe": optuna.samplers.TPESampler, "cmaes": optuna.samplers.CmaEsSampler, "gp": optuna.samplers.GPSampler}
        return OptunaSearch(sampler=samplers[choice.sampler](seed=t.seed))
    if name == "hyperopt":
        from ray.tune.search.hyperopt import HyperOptSearch

        return HyperOptSearch(random_state_seed=t.seed)
    if name in ("blendsearch", "cfo"):
        import flaml

        cls = flaml.BlendSearch if name == "blendsearch" else flaml.CFO
        return cls(low_cost_partial_config=dict(t.low_cost) or None, seed=t.seed)
    from ray.tune.search.bohb import TuneBOHB

    return TuneBOHB(seed=t.seed)


def _changes_shapes(key: str) -> bool:
    """Keys that change the model's weights' shapes or the data it sees (dropout does neither)."""
    return key.startswith("data.") or (key.startswith("model.") and key != "model.dropout")


def mutations(params: list[Param], t: TuneConfig) -> list[Param]:
    """What PBT/PB2 may change in an exploited trial, which continues from the donor's weights:
    by default every key of the space that leaves the weights' shapes alone (the others are
    sampled per trial and copied from the donor with its weights)."""
    if not t.mutations:
        return [p for p in params if not _changes_shapes(p.key)]
    from dltune.hpo.space import parse_space

    chosen = parse_space(t.mutations, "tune.mutations")
    for p in chosen:
        if _changes_shapes(p.key):
            raise ConfigError(f"tune.mutations.{p.key}: an exploited trial continues from the donor's weights, so it cannot change "
                              "the model or data; search it in tune.space only")
    return chosen


def build_scheduler(choice: Choice, cfg: Config, params: list[Param]) -> Any:
    from ray.tune import schedulers

    t, epochs = cfg.tune, cfg.train.epochs
    name = choice.scheduler
    if name == "fifo":
        return schedulers.FIFOScheduler()
    if name == "asha":
        return schedulers.ASHAScheduler(time_attr=TIME_ATTR, max_t=epochs, grace_period=min(t.grace_period, epochs), reduction_factor=t.reduction_factor)
    if name == "hyperband":
        if choice.searcher == "bohb":
            return schedulers.HyperBandForBOHB(time_attr=TIME_ATTR, max_t=epochs, reduction_factor=t.reduction_factor)
        return schedulers.HyperBandScheduler(time_attr=TIME_ATTR, max_t=epochs, reduction_factor=t.reduction_factor)
    if name == "median":
        return schedulers.MedianStoppingRule(time_attr=TIME_ATTR, grace_period=t.grace_period, min_samples_required=2)
    mutated = mutations(params, t)
    if name == "pbt":
        if not mutated:
            raise ConfigError("tune.mutations: pbt needs at least one key to mutate (or a tune.space key outside model.* and data.*)")
        from dltune.hpo.exploits import SafePBT

        return SafePBT(
            time_attr=TIME_ATTR,
            perturbation_interval=t.perturbation_interval,
            hyperparam_mutations={p.key: list(p.args) if p.kind in ("choice", "grid") else to_tune(p) for p in mutated},
            quantile_fraction=t.quantile_fraction,
            resample_probability=t.resample_probability,
            synch=t.synch,
        )
    from dltune.hpo.exploits import SafePB2

    bounds = {p.key: list(p.numeric_range) for p in mutated if p.numeric_range is not None}
    if not bounds:
        raise ConfigError("tune.mutations: pb2 needs numeric entries (uniform, loguniform, quniform, randint) to bound its search")
    return SafePB2(time_attr=TIME_ATTR, perturbation_interval=t.perturbation_interval, hyperparam_bounds=bounds, quantile_fraction=t.quantile_fraction, synch=t.synch)


def uses_checkpoint_exploits(choice: Choice) -> bool:
    return choice.scheduler in ("pbt", "pb2")
