"""The search's trials, as they report, in an Optuna journal file (``study.journal``), whatever the
searcher: ``optuna-dashboard <experiment>/study.journal`` shows the running search live.

Each Tune trial is one Optuna trial, found again by its Ray trial id (a user attribute), so a
paused trial that runs again, or a resumed search, goes on with the same entry. A trial that ran
``train.epochs`` is COMPLETE with its best value; one a scheduler stopped, or that a budget cut,
is PRUNED; one that failed, FAIL. Parameters outside their space (PBT perturbs past it) are kept
as user attributes instead.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

from ray.tune import Callback

from dltune.space import Param

FILE = "study.journal"
RAY_TRIAL_ID = "ray_trial_id"


def distribution(param: Param) -> Any:
    """Optuna's distribution for a dltune space entry."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if param.kind in ("uniform", "quniform", "loguniform"):
        return FloatDistribution(float(param.args[0]), float(param.args[1]), log=param.kind == "loguniform")
    if param.kind in ("randint", "lograndint"):  # Ray's upper bound is exclusive
        return IntDistribution(int(param.args[0]), int(param.args[1]) - 1, log=param.kind == "lograndint")
    return CategoricalDistribution([as_optuna_value(c) for c in param.args])


def as_optuna_value(value: Any) -> Any:
    """A value as an Optuna parameter holds it: a list or dict becomes its repr."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else repr(value)


class OptunaJournal(Callback):
    def __init__(self, path: str, study_name: str, metric: str, mode: str, params: list[Param], max_epochs: int) -> None:
        self.path, self.study_name, self.metric, self.mode = path, study_name, metric, mode
        self.params, self.max_epochs = params, max_epochs
        self._storage: Any = None  # opened on first use, in the driver (the Tuner pickles its callbacks)
        self._study_id = 0
        self._ids: dict[str, int] = {}  # Ray trial id -> Optuna's trial id in the storage

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_storage": None, "_ids": {}}

    def _open(self) -> Any:
        if self._storage is None:
            import optuna
            from optuna.storages import JournalFileStorage, JournalStorage

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks the journal experimental
                storage = JournalStorage(JournalFileStorage(self.path))
            verbosity = optuna.logging.get_verbosity()
            optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in Journal with name"
            try:
                study = optuna.create_study(storage=storage, study_name=self.study_name, load_if_exists=True,
                                            direction="maximize" if self.mode == "max" else "minimize")
            finally:
                optuna.logging.set_verbosity(verbosity)
            self._study_id = storage.get_study_id_from_name(study.study_name)
            self._ids = {t.user_attrs[RAY_TRIAL_ID]: storage.get_trial_id_from_study_id_trial_number(self._study_id, t.number)
                         for t in study.get_trials(deepcopy=False) if RAY_TRIAL_ID in t.user_attrs}
            self._storage = storage
        return self._storage

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        storage = self._open()
        if trial.trial_id in self._ids:
            return  # a paused or restarted trial going on
        from optuna.trial import TrialState, create_trial

        params, dists, outside = {}, {}, {}
        for param in self.params:
            if param.key not in trial.config:
                continue
            dist, value = distribution(param), as_optuna_value(trial.config[param.key])
            if _contains(dist, value):
                params[param.key], dists[param.key] = value, dist
            else:
                outside[param.key] = value
        template = create_trial(state=TrialState.RUNNING, params=params, distributions=dists,
                                user_attrs={RAY_TRIAL_ID: trial.trial_id, **({"params_outside_space": outside} if outside else {})})
        self._ids[trial.trial_id] = storage.create_new_trial(self._study_id, template_trial=template)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        storage = self._open()
        value = result.get(self.metric)
        if trial.trial_id not in self._ids or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        step = int(result.get("epoch") or result.get("training_iteration") or 0)
        storage.set_trial_intermediate_value(self._ids[trial.trial_id], step, float(value))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from optuna.trial import TrialState

        if trial.trial_id not in self._ids:
            return
        reports = self._open().get_trial(self._ids[trial.trial_id]).intermediate_values  # those before a resume too
        if reports and max(reports) >= self.max_epochs:
            self._end(trial.trial_id, TrialState.COMPLETE, [max(reports.values()) if self.mode == "max" else min(reports.values())])
        else:
            self._end(trial.trial_id, TrialState.PRUNED)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from optuna.trial import TrialState

        self._end(trial.trial_id, TrialState.FAIL)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Trials a budget cut are still running here: they end pruned."""
        from optuna.trial import TrialState

        for trial in trials:
            if trial.trial_id in self._ids and self._open().get_trial(self._ids[trial.trial_id]).state == TrialState.RUNNING:
                self._end(trial.trial_id, TrialState.PRUNED)

    def _end(self, ray_trial_id: str, state: Any, values: list[float] | None = None) -> None:
        storage = self._open()
        if ray_trial_id in self._ids and not storage.get_trial(self._ids[ray_trial_id]).state.is_finished():
            storage.set_trial_state_values(self._ids[ray_trial_id], state, values)


def _contains(dist: Any, value: Any) -> bool:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(dist, IntDistribution) and not float(value).is_integer()):
        return False
    return bool(dist.low <= value <= dist.high)
