"""The search's trials, as they report, in an Optuna journal file (``study.journal``), whatever the
searcher: ``optuna-dashboard <experiment>/study.journal`` shows the running search live.

Each Tune trial is one Optuna trial, found again by its Ray trial id (a user attribute), so a
paused trial that runs again, or a resumed search, goes on with the same entry. A trial that ran
``train.epochs`` is COMPLETE with its best value, one a scheduler stopped is PRUNED, one that
failed FAIL. A failed trial that a ``--resume`` runs again gets a new entry beside the failed
one. Trials still running when the search ends (a budget cut them) are settled from results.csv's
stop reasons by ``settle``, and an entry a killed driver left running ends FAIL there. A value
outside its space entry is kept as the user attribute ``params_outside_space``; the values PBT
gave a trial later, as ``pbt_changes`` (a list of {"epoch": the first epoch run with them, key: value}).

Optuna syncs the file on every write, so the writes happen on a thread of their own, in the order
Tune's events came: the Tune loop only queues them. ``close`` (at the experiment's end) waits for
the queue to empty.

The journal serves a dashboard: a failure to write it is one warning line, and the search goes on.
"""
from __future__ import annotations

import contextlib
import math
import os
import queue
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from ray.tune import Callback

from dltune.hpo.mode import best_of
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


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """No "A new study created in Journal", no ExperimentalWarning; Optuna's logging put back after."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def open_study(path: str, study_name: str, mode: str) -> tuple[Any, int, dict[str, int]]:
    """(the journal storage, the study's id, Ray trial id -> the storage's trial id of its latest entry)."""
    import optuna
    from optuna.storages import JournalFileStorage, JournalStorage

    if os.path.lexists(path + ".lock"):
        os.remove(path + ".lock")  # left by a killed driver: this search's driver is the journal's one writer
    with _quiet_optuna():
        storage = JournalStorage(JournalFileStorage(path))
        study = optuna.create_study(storage=storage, study_name=study_name, load_if_exists=True, direction="maximize" if mode == "max" else "minimize")
    study_id = storage.get_study_id_from_name(study.study_name)
    ids = {t.user_attrs[RAY_TRIAL_ID]: storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
           for t in study.get_trials(deepcopy=False) if RAY_TRIAL_ID in t.user_attrs}  # in number order: the latest entry wins
    return storage, study_id, ids


class OptunaJournal(Callback):
    def __init__(self, path: str, study_name: str, metric: str, mode: str, params: list[Param], max_epochs: int) -> None:
        self.path, self.study_name, self.metric, self.mode = path, study_name, metric, mode
        self.params, self.max_epochs = params, max_epochs
        self._init_writer()

    def _init_writer(self) -> None:
        self._storage: Any = None  # opened by the writer thread, on first use in the driver (the Tuner pickles its callbacks)
        self._study_id = 0
        self._ids: dict[str, int] = {}  # Ray trial id -> Optuna's trial id in the storage; the writer's own
        self._configs: dict[str, dict[str, Any]] = {}  # Ray trial id -> its space values as last seen; the Tune loop's own
        self._queue: queue.SimpleQueue[Callable[[Any], None] | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self.broken = False

    def __getstate__(self) -> dict[str, Any]:
        return {k: self.__dict__[k] for k in ("path", "study_name", "metric", "mode", "params", "max_epochs")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_writer()

    def _queued(self, write: Callable[[Any], None]) -> None:
        if self.broken:
            return
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_all, name="dltune-journal", daemon=True)  # daemon: a killed search never waits on it
            self._writer.start()
        self._queue.put(write)

    def _write_all(self) -> None:
        while (write := self._queue.get()) is not None:
            if self.broken:
                continue
            try:
                if self._storage is None:
                    self._storage, self._study_id, self._ids = open_study(self.path, self.study_name, self.mode)
                write(self._storage)
            except Exception as exc:  # noqa: BLE001 - a dashboard's file never ends a search
                self.broken = True
                print(f"dltune: warning: {FILE} is no longer written ({type(exc).__name__}: {exc}); the search goes on", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Write what is queued, then end the writer thread."""
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
            self._writer = None

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.close()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        trial_id, values = trial.trial_id, self._space_values(trial)
        self._configs.setdefault(trial_id, values)  # a trial PBT restarts with new values: its next result notes them
        self._queued(lambda storage: self._start(storage, trial_id, values))

    def _space_values(self, trial: Any) -> dict[str, Any]:
        return {p.key: trial.config[p.key] for p in self.params if p.key in trial.config}

    def _start(self, storage: Any, trial_id: str, values: dict[str, Any]) -> None:
        from optuna.trial import TrialState, create_trial

        known = self._ids.get(trial_id)
        if known is not None:
            entry = storage.get_trial(known)
            if not entry.state.is_finished():
                return  # a paused or restarted trial going on
            # a failed trial a --resume runs again: a new entry, with what it had reported
            template = create_trial(state=TrialState.RUNNING, params=entry.params, distributions=entry.distributions, user_attrs=entry.user_attrs,
                                    intermediate_values=entry.intermediate_values)
        else:
            params, dists, outside = {}, {}, {}
            for param in self.params:
                if param.key not in values:
                    continue
                dist, value = distribution(param), as_optuna_value(values[param.key])
                if _contains(dist, value):
                    params[param.key], dists[param.key] = value, dist
                else:
                    outside[param.key] = value
            template = create_trial(state=TrialState.RUNNING, params=params, distributions=dists,
                                    user_attrs={RAY_TRIAL_ID: trial_id, **({"params_outside_space": outside} if outside else {})})
        self._ids[trial_id] = storage.create_new_trial(self._study_id, template_trial=template)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        trial_id, value = trial.trial_id, result.get(self.metric)
        step = int(result.get("epoch") or result.get("training_iteration") or 0)
        values = self._space_values(trial)
        if trial_id in self._configs and values != self._configs[trial_id]:  # PBT gave the trial new values
            changed = {k: as_optuna_value(v) for k, v in values.items() if self._configs[trial_id].get(k) != v}
            self._configs[trial_id] = values
            self._queued(lambda storage: self._note_change(storage, trial_id, {"epoch": step, **changed}))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        self._queued(lambda storage: storage.set_trial_intermediate_value(self._ids[trial_id], step, float(value)) if trial_id in self._ids else None)

    def _note_change(self, storage: Any, trial_id: str, change: dict[str, Any]) -> None:
        if trial_id in self._ids:
            entry = storage.get_trial(self._ids[trial_id])
            storage.set_trial_user_attr(self._ids[trial_id], "pbt_changes", [*entry.user_attrs.get("pbt_changes", []), change])

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from optuna.trial import TrialState

        trial_id = trial.trial_id

        def end(storage: Any) -> None:
            if trial_id not in self._ids:
                return
            entry = storage.get_trial(self._ids[trial_id])
            reports = entry.intermediate_values  # those before a resume too
            if entry.state.is_finished():
                return
            if reports and max(reports) >= self.max_epochs:
                storage.set_trial_state_values(self._ids[trial_id], TrialState.COMPLETE, [best_of(reports.values(), self.mode)])
            else:
                storage.set_trial_state_values(self._ids[trial_id], TrialState.PRUNED)
        self._queued(end)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from optuna.trial import TrialState

        trial_id = trial.trial_id

        def fail(storage: Any) -> None:
            if trial_id in self._ids and not storage.get_trial(self._ids[trial_id]).state.is_finished():
                storage.set_trial_state_values(self._ids[trial_id], TrialState.FAIL)
        self._queued(fail)


def settle(path: str, study_name: str, mode: str, ends: dict[str, str]) -> None:
    """At the search's end, end each entry still running by its trial's stop reason (``ends``: Ray
    trial id -> results.csv's stop_reason): completed COMPLETE, error FAIL, otherwise PRUNED; an
    entry of a trial the search no longer has (a killed driver's run, tried afresh) FAIL."""
    from optuna.trial import TrialState

    storage, study_id, ids = open_study(path, study_name, mode)
    for entry in storage.get_all_trials(study_id, deepcopy=False):
        if entry.state != TrialState.RUNNING:
            continue
        ray_id = entry.user_attrs.get(RAY_TRIAL_ID)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, entry.number)
        if ray_id not in ends or ids.get(ray_id) != trial_id:
            storage.set_trial_user_attr(trial_id, "abandoned", "a killed driver's run; the search ran the trial afresh")
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        elif ends[ray_id] == "completed" and entry.intermediate_values:
            storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [best_of(entry.intermediate_values.values(), mode)])
        else:
            storage.set_trial_state_values(trial_id, TrialState.FAIL if ends[ray_id] == "error" else TrialState.PRUNED)


def _contains(dist: Any, value: Any) -> bool:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(dist, IntDistribution) and not float(value).is_integer()):
        return False
    return bool(dist.low <= value <= dist.high)
