"""A discrete-event simulation of a multi-fidelity search on the LCBench surrogate.

The surrogate turns a configuration into its 52-epoch learning curve: each epoch's
validation accuracy and its training seconds. The simulation runs ``slots``
trials at once on a simulated clock and hands every epoch's result to a driver:

- ``RayDriver``: the very searcher and scheduler objects dltune builds for a
  method (``dltune.hpo.algorithms``), wrapped as Ray Tune wraps them, and called
  in the order Ray's TuneController calls them (results, stops, pauses, the
  scheduler's choice of the next trial, then pending trials first come first served);
- ``OptunaDriver``: plain Optuna with its HyperbandPruner, ask and tell;
- ``SyneTuneDriver``: a Syne Tune scheduler, when Syne Tune is installed.

A search's cost is the summed training seconds of every epoch it ran, so a stopped
trial costs only its epochs and paused trials cost nothing. Nothing here reads
the budget: a search's decisions do not depend on it, so one search run to the
largest budget gives its best-so-far at every smaller one.

At ``epochs=1`` the objective is single-fidelity: a trial still trains its 52
epochs on the clock, but reports once, at the end, as its only step (epoch 1),
so searchers learn only from finished runs (what ``auto``'s single-fidelity
branches are for) and the budget is spent exactly as in a full-fidelity search.

The objective is anything with ``curve(task, config) -> Run``, ``space`` (a
tune.space override), ``metric`` and ``suggest(optuna_trial)``: the surrogate
here, or a tabular benchmark (bench/hpo_tables.py), whose runs are one step long.
"""
from __future__ import annotations

import heapq
import json
import logging
import math
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

EPOCHS = 52
METRIC = "val_accuracy"
# name: (low, high, log, integer), the surrogate's space (its README)
SPACE: dict[str, tuple[float, float, bool, bool]] = {
    "batch_size": (16, 512, True, True),
    "learning_rate": (1e-4, 1e-1, True, False),
    "momentum": (0.1, 0.99, False, False),
    "weight_decay": (1e-5, 1e-1, False, False),
    "num_layers": (1, 5, False, True),
    "max_units": (64, 1024, True, True),
    "max_dropout": (0.0, 1.0, False, False),
}
COLUMNS = ["batch_size", "learning_rate", "momentum", "weight_decay", "num_layers", "max_units", "max_dropout"]  # after epoch


class Surrogate:
    metric = METRIC

    def __init__(self, folder: Path) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
        self._codes = json.loads((folder / "encoding.json").read_text())["OpenML_task_id"]

    def predict(self, task: str, configs: np.ndarray, epochs: np.ndarray) -> np.ndarray:
        """(time, val_accuracy) per row; ``configs`` holds COLUMNS' raw values."""
        n = len(epochs)
        x_cont = np.column_stack([epochs, configs]).astype(np.float32)
        x_cat = np.full((n, 1), self._codes[task], dtype=np.int32)
        out = self._session.run(["output"], {"x_cat": x_cat, "x_cont": x_cont})[0]
        return out[:, :2]

    def curve(self, task: str, config: dict[str, float]) -> "Run":
        row = np.array([[float(config[c]) for c in COLUMNS]] * EPOCHS)
        out = self.predict(task, row, np.arange(1, EPOCHS + 1))
        elapsed = np.maximum.accumulate(np.maximum(out[:, 0], 0.0))
        cost = np.maximum(np.diff(elapsed, prepend=0.0), 1e-3)  # every epoch costs something
        return Run(acc=out[:, 1].astype(float), cost=cost.astype(float))

    @property
    def space(self) -> str:
        return lcbench_space()

    def suggest(self, trial: Any) -> dict[str, float]:
        """A configuration from an Optuna trial."""
        return {name: _suggest(trial, name) for name in SPACE}

    def random_configs(self, n: int, rng: np.random.Generator) -> np.ndarray:
        cols = []
        for name in COLUMNS:
            low, high, log, integer = SPACE[name]
            x = np.exp(rng.uniform(math.log(low), math.log(high), n)) if log else rng.uniform(low, high, n)
            cols.append(np.clip(np.round(x), low, high) if integer else x)
        return np.column_stack(cols)


@dataclass
class TaskScale:
    """What a task's regret and budget are measured against (the protocol in the surrogate's README)."""

    full_run_s: float  # median time at epoch 52 over 500 random configurations
    optimum: float  # best epoch-52 accuracy of 20,000 random configurations
    typical: float  # median epoch-52 accuracy of those: a normalised regret of 1
    floor: float = 0.0  # the score of a search with no finished trial yet


def task_scale(surrogate: Surrogate, task: str) -> TaskScale:
    rng = np.random.default_rng(int(task))
    timing = surrogate.predict(task, surrogate.random_configs(500, rng), np.full(500, EPOCHS))
    accuracy = surrogate.predict(task, surrogate.random_configs(20000, rng), np.full(20000, EPOCHS))[:, 1]
    return TaskScale(float(np.median(timing[:, 0])), float(accuracy.max()), float(np.median(accuracy)))


@dataclass
class Run:
    acc: np.ndarray  # what the searcher hears at each epoch (the metric, higher is better)
    cost: np.ndarray
    epoch: int = 0  # epochs done
    truth: float | None = None  # a noisy table's mean over its seeds: the run's score, where it differs from acc[-1]


class Driver(Protocol):
    def start(self, free: int) -> list[Any]:
        """Up to ``free`` trials to run now, new or resumed, as keys of ``runs``."""

    def report(self, key: Any, epoch: int, acc: float, cost: float) -> bool:
        """One epoch's result; True: the trial goes on to the next epoch in its slot."""


@dataclass
class Outcome:
    trace: list[tuple[float, float]] = field(default_factory=list)  # (cost spent, best full-fidelity accuracy) at each new best
    trials: int = 0
    epochs: int = 0
    stalled: bool = False  # no trial running and the driver would start none before the budget


def simulate(driver: Driver, runs: dict[Any, Run], slots: int, budget: float, epochs: int = EPOCHS) -> Outcome:
    """``epochs``: the run's length (the driver hears every epoch) or 1 (it hears the last alone, as
    step 1). The best run is the one that reported the best last value; its score is its truth."""
    out, events, best, spent, seq = Outcome(), [], -math.inf, 0.0, 0
    clock = 0.0

    def fill() -> None:
        nonlocal seq
        for key in driver.start(slots - len(events)):
            run = runs[key]
            seq += 1
            heapq.heappush(events, (clock + run.cost[run.epoch], seq, key))

    fill()
    while events:
        clock, _, key = heapq.heappop(events)
        run = runs[key]
        if spent + run.cost[run.epoch] > budget:
            break
        spent += run.cost[run.epoch]
        run.epoch += 1
        out.epochs += 1
        full = len(run.acc)
        if run.epoch == full and run.acc[-1] > best:
            best = float(run.acc[-1])
            out.trace.append((spent, best if run.truth is None else run.truth))
        if epochs == 1:
            goes_on = run.epoch < full or driver.report(key, 1, float(run.acc[-1]), float(run.cost.sum()))
        else:
            goes_on = driver.report(key, run.epoch, float(run.acc[run.epoch - 1]), float(run.cost[run.epoch - 1]))
        if goes_on:
            seq += 1
            heapq.heappush(events, (clock + run.cost[run.epoch], seq, key))
        fill()
    else:
        out.stalled = True
    out.trials = len(runs)
    return out


# --- dltune's methods, as Ray Tune drives them ------------------------------------------------

class _Controller:
    """The part of Ray's TuneController that schedulers call back into."""

    def __init__(self, search_alg: Any, scheduler: Any) -> None:
        self.search_alg, self.scheduler, self.trials = search_alg, scheduler, []

    def get_trials(self) -> list[Any]:
        return self.trials

    def get_live_trials(self) -> list[Any]:
        return [t for t in self.trials if t.status not in ("TERMINATED", "ERROR")]

    def stop_trial(self, trial: Any) -> None:
        """TuneController.stop_trial: a PENDING or PAUSED trial is removed, a RUNNING one completed."""
        from ray.tune.utils import flatten_dict

        if trial.status in ("ERROR", "TERMINATED"):
            return
        if trial.status in ("PENDING", "PAUSED"):
            self.scheduler.on_trial_remove(self, trial)
            self.search_alg.on_trial_complete(trial.trial_id)
        else:
            self.scheduler.on_trial_complete(self, trial, flatten_dict(trial.last_result))
            self.search_alg.on_trial_complete(trial.trial_id, result=flatten_dict(trial.last_result))
        trial.set_status("TERMINATED")


def lcbench_space() -> str:
    """The surrogate's space as a tune.space override."""
    return "{" + ", ".join(f"params.{name}: {{{('lograndint' if log else 'randint') if integer else ('loguniform' if log else 'uniform')}: "
                           f"[{_yaml(low, integer)}, {_yaml(high, integer)}]}}" for name, (low, high, log, integer) in SPACE.items()) + "}"


def dltune_overrides(method: str, seed: int, space: str, metric: str, epochs: int = EPOCHS) -> list[str]:
    """``searcher[:sampler][@key=value;...]+scheduler`` as dltune overrides for an objective's space
    (``@`` sets tune.searcher_kwargs, e.g. ``optuna:gp@n_startup_trials=3+fifo``)."""
    searcher, _, scheduler = method.partition("+")
    searcher, _, kwargs = searcher.partition("@")
    searcher, _, sampler = searcher.partition(":")
    return [f"tune.space={space}", f"tune.metric={metric}", "tune.mode=max", f"train.epochs={epochs}", "tune.num_samples=100000",
            f"tune.searcher={searcher}", f"tune.scheduler={scheduler or 'auto'}", f"tune.seed={seed}", "tune.grace_period=1",
            *([f"tune.sampler={sampler}"] if sampler else []),
            *([f"tune.searcher_kwargs={{{kwargs.replace('=', ': ').replace(';', ', ')}}}"] if kwargs else [])]


def _yaml(x: float, integer: bool) -> str:
    return str(int(x)) if integer else f"{x:.6e}"  # YAML reads 1e-05 as a string, 1.000000e-05 as a float


class RayDriver:
    def __init__(self, overrides: list[str], slots: int, make_run: Any, runs: dict[Any, Run], storage: str, epochs: int) -> None:
        from ray.tune.experiment import Experiment
        from ray.tune.search import ConcurrencyLimiter, SearchGenerator, Searcher

        from dltune.config import Config, load_config
        from dltune.hpo import algorithms
        from dltune.space import parse_space

        cfg = load_config(None, overrides)
        params = parse_space(cfg.tune.space, Config)
        self.choice = algorithms.resolve_choice(params, cfg)
        algorithms.check_compatible(self.choice, params, cfg)
        searcher = algorithms.build_searcher(self.choice, cfg, slots)
        self.scheduler = algorithms.build_scheduler(self.choice, cfg, params)
        space = algorithms.param_space(params, self.choice)
        self.max_pending = 200  # Ray's pending-trial limit for the variant generator
        if isinstance(searcher, Searcher):  # as Tuner does with max_concurrent_trials
            searcher = SearchGenerator(ConcurrencyLimiter(searcher, max_concurrent=slots))
            self.max_pending = slots
        self.metric = cfg.tune.metric
        searcher.set_search_properties(self.metric, "max", space)
        self.scheduler.set_search_properties(self.metric, "max")
        searcher.add_configurations([Experiment("sim", _never_called, config=space, num_samples=cfg.tune.num_samples, storage_path=storage)])
        self.search_alg, self.make_run, self.runs, self.epochs = searcher, make_run, runs, epochs
        self.ctrl = _Controller(searcher, self.scheduler)

    def _queue(self) -> None:
        while sum(t.status == "PENDING" for t in self.ctrl.trials) < self.max_pending and not self.search_alg.is_finished():
            trial = self.search_alg.next_trial()
            if trial is None:
                return
            self.runs[trial] = self.make_run({k.removeprefix("params."): v for k, v in trial.config.items()})
            self.ctrl.trials.append(trial)
            self.scheduler.on_trial_add(self.ctrl, trial)

    def start(self, free: int) -> list[Any]:
        out: list[Any] = []
        while len(out) < free:
            self._queue()
            trial = self.scheduler.choose_trial_to_run(self.ctrl)
            if trial is None:
                trial = next((t for t in self.ctrl.trials if t.status == "PENDING"), None)
            if trial is None:
                break
            trial.set_status("RUNNING")
            out.append(trial)
        return out

    def report(self, trial: Any, epoch: int, acc: float, cost: float) -> bool:
        from ray.tune.schedulers import TrialScheduler

        result = {"epoch": epoch, self.metric: acc, "training_iteration": epoch, "time_this_iter_s": cost, "trial_id": trial.trial_id, "done": False,
                  "config": trial.config}  # Tune's results carry the config; BlendSearch reads it
        decision = self.scheduler.on_trial_result(self.ctrl, trial, result)
        if decision != TrialScheduler.STOP:
            self.search_alg.on_trial_result(trial.trial_id, result)
        trial.run_metadata.last_result = result  # what update_last_result sets, without its metric analysis
        if decision == TrialScheduler.PAUSE:
            trial.set_status("PAUSED")
            return False
        if decision == TrialScheduler.STOP or epoch == self.epochs:  # at the last epoch the function returns
            self.ctrl.stop_trial(trial)
            return False
        return True


def _never_called(config: dict[str, Any]) -> None:
    raise AssertionError("the simulation runs no trainable")


# --- peers --------------------------------------------------------------------------------------

def _suggest(trial: Any, name: str) -> float:
    low, high, log, integer = SPACE[name]
    if integer:
        return trial.suggest_int(name, int(low), int(high), log=log)
    return trial.suggest_float(name, low, high, log=log)


class OptunaDriver:
    """Plain Optuna, ask and tell: TPE with its HyperbandPruner (min_resource 1, max_resource 52), or
    at ``epochs=1`` TPE alone."""

    def __init__(self, seed: int, make_run: Any, runs: dict[Any, Run], epochs: int, suggest: Any) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        pruner = (optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3) if epochs > 1
                  else optuna.pruners.NopPruner())
        # named: HyperbandPruner puts a trial in its bracket by a hash of the study's name, a random one by default
        self.study = optuna.create_study(study_name=f"plain-{seed}", direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
        self.make_run, self.runs, self.epochs, self.suggest = make_run, runs, epochs, suggest

    def start(self, free: int) -> list[Any]:
        out = []
        for _ in range(free):
            trial = self.study.ask()
            self.runs[trial] = self.make_run(self.suggest(trial))
            out.append(trial)
        return out

    def report(self, trial: Any, epoch: int, acc: float, cost: float) -> bool:
        import optuna

        trial.report(acc, epoch)
        if epoch == self.epochs:
            self.study.tell(trial, acc)
            return False
        if trial.should_prune():
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return False
        return True


class SyneTuneDriver:
    """A Syne Tune multi-fidelity scheduler (``asha``, ``bohb``, ``asha-bore`` or ``asha-cqr``), called as
    its Tuner calls it: a STOP (also the one at max_t) removes the trial. Syne Tune lives in the
    benchmark's own environment, not the project's."""

    def __init__(self, name: str, seed: int, make_run: Any, runs: dict[Any, Run]) -> None:
        from syne_tune.config_space import lograndint, loguniform, randint, uniform
        from syne_tune.optimizer import baselines

        space = {n: ((lograndint if log else randint)(int(lo), int(hi)) if integer else (loguniform if log else uniform)(lo, hi))
                 for n, (lo, hi, log, integer) in SPACE.items()}
        kinds = {"asha": baselines.ASHA, "bohb": baselines.BOHB, "asha-bore": baselines.ASHABORE, "asha-cqr": baselines.ASHACQR}
        self.scheduler = kinds[name](space, metric=METRIC, do_minimize=False, time_attr="epoch", max_t=EPOCHS, random_seed=seed)
        self.make_run, self.runs, self.trials = make_run, runs, {}

    def start(self, free: int) -> list[Any]:
        from syne_tune.backend.trial_status import Trial

        out = []
        for _ in range(free):
            suggestion = self.scheduler.suggest()
            if suggestion is None:
                break
            key = len(self.trials)
            self.trials[key] = Trial(trial_id=key, config=suggestion.config, creation_time=None)
            self.runs[key] = self.make_run(suggestion.config)
            self.scheduler.on_trial_add(self.trials[key])
            out.append(key)
        return out

    def report(self, key: Any, epoch: int, acc: float, cost: float) -> bool:
        from syne_tune.optimizer.scheduler import SchedulerDecision

        trial, result = self.trials[key], {"epoch": epoch, METRIC: acc}
        if self.scheduler.on_trial_result(trial, result) == SchedulerDecision.STOP:
            self.scheduler.on_trial_remove(trial)
            return False
        if epoch == EPOCHS:  # the script ends
            self.scheduler.on_trial_complete(trial, result)
            return False
        return True


def run_search(objective: Any, task: str, method: str, seed: int, slots: int, budget: float,
               epochs: int = EPOCHS) -> tuple[Outcome, str]:
    """One search on ``objective`` (the surrogate, or a table; ``epochs``: 52, or 1 for the
    single-fidelity objective); returns its outcome and, for dltune's ``auto``, what it chose."""
    runs: dict[Any, Run] = {}

    def make_run(config: dict[str, float]) -> Run:
        return objective.curve(task, config)

    chosen = ""
    if method == "optuna-plain":
        driver: Driver = OptunaDriver(seed, make_run, runs, epochs, objective.suggest)
    elif method.startswith("synetune-"):  # multi-fidelity only: lcbench_search.py refuses it with --single-fidelity
        driver = SyneTuneDriver(method.removeprefix("synetune-"), seed, make_run, runs)
    else:
        with tempfile.TemporaryDirectory() as storage:
            ray_driver = RayDriver(dltune_overrides(method, seed, objective.space, objective.metric, epochs), slots, make_run, runs, storage, epochs)
            chosen = f"{ray_driver.choice.searcher}+{ray_driver.choice.scheduler}"
            return simulate(ray_driver, runs, slots, budget, epochs), chosen
    return simulate(driver, runs, slots, budget, epochs), chosen


def quiet() -> None:
    """For a worker process of the benchmark: the searchers' per-trial chatter off."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("ray", "ray.tune", "flaml", "syne_tune"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # SMAC's random forest, in a worker process, says so at every fit
    warnings.filterwarnings("ignore", message="Loky-backed parallel loops cannot be called in a multiprocessing")
