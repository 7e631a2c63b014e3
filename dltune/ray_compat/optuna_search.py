"""Ray's OptunaSearch, telling Optuna what became of each trial.

Ray's adapter reports intermediate values at ``training_iteration`` and tells every trial
that ended with a value COMPLETE: one a scheduler stopped at a low rung, and one that failed
after reporting, alike. TPE then models low-epoch values as if they were finished runs. Here
a trial stopped before full fidelity is PRUNED with its intermediate values at their epochs
(what Optuna's own pruners produce), and a failed one is FAIL.

Private names used (Ray 2.60), checked by ``dltune.ray_compat.check.missing()``: the searcher's
``_ot_trials``, ``_ot_study``, ``_completed_trials`` and ``_setup_study``.
"""
from __future__ import annotations

from typing import Any

from optuna.trial import TrialState
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search.optuna import OptunaSearch


def innermost_searcher(search_alg: Any) -> Any:
    """The searcher inside Tune's and dltune's wrappers (SearchGenerator, ConcurrencyLimiter, Repeater)."""
    while hasattr(search_alg, "searcher"):
        search_alg = search_alg.searcher
    return search_alg


class FidelityAwareOptunaSearch(OptunaSearch):
    """``pruner``: an Optuna pruner for the study, consulted by OptunaPruning (Ray's adapter
    always gives its study a NopPruner)."""

    def __init__(self, *, time_attr: str, full_fidelity: int, pruner: Any = None, **kwargs: Any) -> None:
        self._time_attr, self._full_fidelity, self._pruner = time_attr, full_fidelity, pruner
        self._last_step: dict[str, int] = {}
        self._pruned: set[str] = set()
        super().__init__(**kwargs)

    def _setup_study(self, mode: Any) -> None:
        super()._setup_study(mode)
        if self._pruner is not None:
            self._ot_study.pruner = self._pruner  # TPE reads it too: it models each Hyperband bracket apart

    def _step(self, result: dict[str, Any]) -> int:
        return int(result.get(self._time_attr, result.get("training_iteration", 0)))

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        step = self._step(result)
        if trial_id not in self._ot_trials or trial_id in self._completed_trials or self.metric not in result or step <= self._last_step.get(trial_id, 0):
            # a step is reported once (OptunaPruning reports it first); a trial this study never
            # asked for (resumed from an experiment state saved after the searcher's state) is not
            # in it: the next resume adds it once it has finished (searcher_history)
            return
        self._last_step[trial_id] = step
        self._ot_trials[trial_id].report(result[self.metric], step)

    def should_prune(self, trial_id: str, result: dict[str, Any]) -> bool:
        """The study's pruner on this trial's values, ``result``'s included."""
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return False
        self.on_trial_result(trial_id, result)
        prune = self._ot_trials[trial_id].should_prune()
        if prune:
            self._pruned.add(trial_id)
        return prune

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id not in self._ot_trials and trial_id not in self._completed_trials:
            return  # never asked for (see on_trial_result)
        if trial_id in self._completed_trials or (result and not error and self._step(result) >= self._full_fidelity):
            super().on_trial_complete(trial_id, result, error)
            return
        # Ray hands over the result a scheduler stopped the trial on without passing it to
        # on_trial_result first (and a paused trial stopped by HyperBand with none); a trial that
        # ended on its own comes with its last result again.
        stopped = trial_id in self._pruned or not result or self._step(result) > self._last_step.get(trial_id, 0)
        if not error and not stopped:
            super().on_trial_complete(trial_id, result, error)
            return
        if result and not error:
            self.on_trial_result(trial_id, result)  # the value it was stopped on
        self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.FAIL if error else TrialState.PRUNED)
        self._completed_trials.add(trial_id)


class OptunaPruning(FIFOScheduler):
    """Stops a trial when the Optuna searcher's pruner says so: Optuna's own pruning (its
    HyperbandPruner) run through Ray Tune, decided on each result before Tune goes on."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        searcher = innermost_searcher(tune_controller.search_alg)
        if not isinstance(searcher, FidelityAwareOptunaSearch):
            raise TypeError(f"OptunaPruning needs dltune's Optuna searcher, not {type(searcher).__name__}")
        return TrialScheduler.STOP if searcher.should_prune(trial.trial_id, result) else TrialScheduler.CONTINUE


def missing() -> list[str]:
    """What of the above the installed Ray lacks, each as 'where: name'."""
    searcher = OptunaSearch()
    gone = [f"ray.tune.search.optuna.OptunaSearch: {name}" for name in ("_ot_trials", "_ot_study", "_completed_trials") if not hasattr(searcher, name)]
    return gone + ([] if callable(getattr(OptunaSearch, "_setup_study", None)) else ["ray.tune.search.optuna.OptunaSearch: _setup_study"])
