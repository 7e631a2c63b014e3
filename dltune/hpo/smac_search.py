"""SMAC3 as a Ray Tune searcher, and the scheduler that runs its multi-fidelity budgets.

``tune.searcher: smac`` with ``tune.scheduler: smac_hyperband`` (what ``auto`` gives it when
``train.epochs`` is above ``tune.grace_period``) is SMAC's multi-fidelity facade: random-forest BO with SMAC's own Hyperband
intensifier, which decides each trial's config *and* its epochs. ``SmacBudgets`` stops a trial at
the epoch SMAC asked for. SMAC's budgets are ``train.epochs / reduction_factor**k``, here rounded up,
so every bracket's top is ``train.epochs``. A config SMAC promotes runs again as a new trial from
epoch 0 to the larger budget, as SMAC runs it on its own (no checkpoint is carried over).
With ``fifo`` it is SMAC's hyperparameter-optimisation facade on full runs.

SMAC keeps its state (run history, intensifier) in memory and reads and writes it in an output
folder: a temporary one that exists only while SMAC is built, saved or loaded. ``save`` puts that
state, and which trial is which SMAC trial, into Ray's searcher checkpoint, so ``--resume`` goes on
with SMAC's brackets where they were. Only SMAC's public API is used (facades, ``ask``/``tell``,
``optimizer.save/reset/load``).
"""
from __future__ import annotations

import math
import pickle
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from dltune.ray_compat.optuna_search import innermost_searcher
from dltune.space import Param

STATE_FILES = ("optimization.json", "runhistory.json", "intensifier.json")  # what SMBO.save writes


def config_space(params: list[Param], seed: int) -> Any:
    """dltune's space as a ConfigSpace; a quniform key is the index of its step (``from_smac``)."""
    from ConfigSpace import Categorical, ConfigurationSpace, Float, Integer

    cs = ConfigurationSpace(seed=seed)
    for p in params:
        a = p.args
        if p.kind in ("uniform", "loguniform"):
            cs.add(Float(p.key, (float(a[0]), float(a[1])), log=p.kind == "loguniform"))
        elif p.kind in ("randint", "lograndint"):
            cs.add(Integer(p.key, (int(a[0]), int(a[1])), log=p.kind == "lograndint"))
        elif p.kind == "quniform":
            cs.add(Integer(p.key, (0, int(math.floor((a[1] - a[0]) / a[2] + 1e-9)))))
        elif p.kind == "choice":
            cs.add(Categorical(p.key, list(a)))
        else:  # check_compatible refuses grid entries for every searcher but random and grid
            raise ValueError(f"{p.key}: SMAC takes no {p.kind} entries")
    return cs


def from_smac(params: list[Param], values: dict[str, Any]) -> dict[str, Any]:
    """A SMAC config as trial values: a quniform key's step index back to its value."""
    out = dict(values)
    for p in params:
        if p.kind == "quniform":
            x = p.args[0] + int(values[p.key]) * p.args[2]
            out[p.key] = int(x) if float(x).is_integer() else round(x, 12)
    return out


def to_smac(params: list[Param], config: dict[str, Any]) -> dict[str, Any]:
    out = {p.key: config[p.key] for p in params}
    for p in params:
        if p.kind == "quniform":
            out[p.key] = int(round((float(config[p.key]) - p.args[0]) / p.args[2]))
    return out


def epochs_of(budget: float) -> int:
    return math.ceil(budget - 1e-9)


def smac_budgets(epochs: int, min_epochs: int, eta: int) -> list[float]:
    """SMAC's Hyperband budgets, smallest first, by SMAC's own arithmetic (a plain floor of the
    log, so 243 epochs with eta 3 give 3 to 243, not 1)."""
    import numpy as np

    top = int(np.floor(np.log(epochs / min_epochs) / np.log(eta)))
    return [epochs / eta**k for k in range(top, -1, -1)]


class SmacSearch(Searcher):
    """``epochs``: train.epochs; ``min_epochs`` below it makes it multi-fidelity (SMAC's Hyperband
    with ``eta``), equal to it single-fidelity (full runs only). ``initial_configs``: the random
    configs before the model acts (Sobol for full runs); SMAC's default is 10 per key, at most a
    quarter of ``num_samples``. A crashed trial, or one whose metric is missing or not finite, is
    told to SMAC as crashed at the worst cost seen (an infinite cost breaks SMAC's model)."""

    def __init__(self, params: list[Param], *, time_attr: str, epochs: int, min_epochs: int, eta: int, seed: int, num_samples: int,
                 initial_configs: int | None = None, metric: str | None = None, mode: str | None = None) -> None:
        super().__init__(metric=metric, mode=mode)
        self._args = {"params": params, "time_attr": time_attr, "epochs": epochs, "min_epochs": min_epochs, "eta": eta, "seed": seed,
                      "num_samples": num_samples, "initial_configs": initial_configs}
        self._time_attr, self._params, self._epochs, self._min_epochs, self._eta, self._seed = time_attr, params, epochs, min(min_epochs, epochs), eta, seed
        self._num_samples, self._initial_configs = num_samples, initial_configs
        # SMAC reads and writes its state in a folder; it exists only while SMAC is built, saved or loaded
        self._folder = Path(tempfile.mkdtemp(prefix="dltune-smac-"))
        self._pending: dict[str, Any] = {}  # trial id -> SMAC's TrialInfo, asked and not yet told
        self._budgets: dict[str, int] = {}  # trial id -> the epoch its trial stops at
        self._worst: float | None = None  # the worst finite cost told
        self._crashed: list[Any] = []  # crashed trials' TrialInfos, waiting for a finite cost to tell them with
        with self._scratch():
            self._smac = self._facade()

    @property
    def multi_fidelity(self) -> bool:
        return self._min_epochs < self._epochs

    def _facade(self) -> Any:
        from smac import HyperparameterOptimizationFacade, MultiFidelityFacade, Scenario

        budgets = {"min_budget": self._min_epochs, "max_budget": self._epochs} if self.multi_fidelity else {}
        scenario = Scenario(config_space(self._params, self._seed), name="search", output_directory=self._folder,
                            deterministic=True, n_trials=max(self._num_samples, 1), seed=self._seed, **budgets)
        facade = MultiFidelityFacade if self.multi_fidelity else HyperparameterOptimizationFacade
        parts = {} if self._initial_configs is None else {"initial_design": facade.get_initial_design(scenario, n_configs=self._initial_configs, max_ratio=1.0)}
        if self.multi_fidelity:
            parts["intensifier"] = MultiFidelityFacade.get_intensifier(scenario, eta=self._eta)
        # SMAC checks its target function's arguments (budget: multi-fidelity only); Ray Tune runs the trials, not SMAC
        return facade(scenario, _never_called_with_budget if self.multi_fidelity else _never_called, overwrite=True, logging_level=False, **parts)

    @contextmanager
    def _scratch(self) -> Iterator[None]:
        """Our folder, there for the block and removed after it."""
        self._folder.mkdir(parents=True, exist_ok=True)
        try:
            yield
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)

    def _output(self) -> Path:
        """SMAC's output folder (its scenario's, inside ours), made."""
        folder = Path(self._smac.scenario.output_directory)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        # the space is dltune's own (given at construction); Tune's copy of it says nothing more
        self._metric, self._mode = metric or self._metric, mode or self._mode
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        from smac.main.exceptions import ConfigurationSpaceExhaustedException

        try:
            info = self._smac.ask()
        except ConfigurationSpaceExhaustedException:  # a small discrete space, every config tried
            return Searcher.FINISHED
        self._pending[trial_id] = info
        self._budgets[trial_id] = epochs_of(info.budget) if info.budget is not None else self._epochs
        return from_smac(self._params, dict(info.config))

    @property
    def told(self) -> int:
        """How many trials SMAC's run history has as finished."""
        return self._smac.runhistory.finished

    def budget(self, trial_id: str) -> int:
        """The epoch SMAC asked this trial to run to."""
        return self._budgets.get(trial_id, self._epochs)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        from smac.runhistory import StatusType, TrialValue

        info = self._pending.pop(trial_id, None)
        if info is None:
            return
        value = float(result[self._metric]) if not error and result and self._metric in result else math.nan
        if not math.isfinite(value):
            self._crashed.append(info)
        else:
            cost = -value if self._mode == "max" else value
            self._worst = cost if self._worst is None else max(self._worst, cost)
            self._smac.tell(info, TrialValue(cost=cost), save=False)
        if self._worst is not None:
            for crashed in self._crashed:
                self._smac.tell(crashed, TrialValue(cost=self._worst, status=StatusType.CRASHED), save=False)
            self._crashed.clear()

    def heard(self, trial_id: str) -> bool:
        """Whether SMAC has been told this trial's end (False for a trial it never asked for)."""
        return trial_id not in self._pending and trial_id in self._budgets

    def tell_finished(self, trial_id: str, config: dict[str, Any], result: dict[str, Any]) -> None:
        """A finished trial, on resume: told as asked, or, one SMAC never asked for (suggested
        after its last save), added at the epoch it reached."""
        from ConfigSpace import Configuration
        from smac.runhistory import TrialInfo

        if trial_id not in self._pending:
            epoch = int(result[self._time_attr])
            budget = None
            if self.multi_fidelity:  # SMAC's own budget for the epoch it reached (SMAC ignores any other)
                budget = max((b for b in smac_budgets(self._epochs, self._min_epochs, self._eta) if epochs_of(b) <= epoch), default=None)
                if budget is None:
                    return
            seed = next((key.seed for key in self._smac.runhistory.keys()), self._seed)  # SMAC's one seed of a deterministic run
            self._pending[trial_id] = TrialInfo(Configuration(self._smac.scenario.configspace, values=to_smac(self._params, config)),
                                                seed=seed, budget=budget)
            self._budgets[trial_id] = epoch
        self.on_trial_complete(trial_id, result)

    def _state(self) -> dict[str, Any]:
        with self._scratch():
            folder = self._output()
            self._smac.optimizer.save()
            files = {name: (folder / name).read_bytes() for name in STATE_FILES}
        return {"files": files,
                # by SMAC's own config ids: its run history keeps asked trials as running
                "pending": {tid: (self._smac.runhistory.get_config_id(info.config), info.seed, info.budget) for tid, info in self._pending.items()},
                "crashed": [(self._smac.runhistory.get_config_id(info.config), info.seed, info.budget) for info in self._crashed],
                "budgets": self._budgets, "worst": self._worst, "metric": self._metric, "mode": self._mode}

    def _load_state(self, state: dict[str, Any]) -> None:
        from smac.runhistory import TrialInfo

        with self._scratch():
            folder = self._output()
            for name, data in state["files"].items():
                (folder / name).write_bytes(data)
            self._smac.optimizer.reset()
            self._smac.optimizer.load()
        history = self._smac.runhistory
        self._pending = {tid: TrialInfo(history.get_config(config_id), seed=seed, budget=budget)
                         for tid, (config_id, seed, budget) in state["pending"].items()}
        self._crashed = [TrialInfo(history.get_config(config_id), seed=seed, budget=budget) for config_id, seed, budget in state["crashed"]]
        self._budgets, self._worst, self._metric, self._mode = state["budgets"], state["worst"], state["metric"], state["mode"]

    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_bytes(pickle.dumps(self._state()))

    def restore(self, checkpoint_path: str) -> None:
        self._load_state(pickle.loads(Path(checkpoint_path).read_bytes()))

    # Tune pickles its searcher with the tuner (tuner.pkl): SMAC's facade goes as its saved state.
    def __getstate__(self) -> dict[str, Any]:
        return {"args": self._args, "state": self._state()}

    def __setstate__(self, saved: dict[str, Any]) -> None:
        self.__init__(**saved["args"])  # type: ignore[misc]
        self._load_state(saved["state"])


def _never_called(config: Any, seed: int = 0) -> float:
    raise RuntimeError("SMAC's target function is not called: Ray Tune runs the trials")


def _never_called_with_budget(config: Any, seed: int = 0, budget: float = 0.0) -> float:
    return _never_called(config, seed)


class SmacBudgets(FIFOScheduler):
    """Stops each trial at the epoch SMAC's Hyperband asked for (``tune.scheduler: smac_hyperband``)."""

    def __init__(self, time_attr: str) -> None:
        super().__init__()
        self._time_attr = time_attr

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        searcher = innermost_searcher(tune_controller.search_alg)
        if not isinstance(searcher, SmacSearch):
            raise TypeError(f"smac_hyperband needs tune.searcher=smac, not {type(searcher).__name__}")
        return TrialScheduler.STOP if int(result.get(self._time_attr, 0)) >= searcher.budget(trial.trial_id) else TrialScheduler.CONTINUE
