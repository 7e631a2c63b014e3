"""Optuna's GPSampler with a constant liar, for concurrent trials.

Optuna 3.6's GPSampler models completed trials only. With several trials in flight, each new
one is asked on the same data, the acquisition function has the same maximum, and the
concurrent trials land on the same point. Here each running trial that has its parameters
is modelled as if it had finished with a stand-in value, the mean of the completed ones (a
constant liar, as TPESampler's ``constant_liar`` is for TPE), so the next point is asked elsewhere.
With one trial at a time nothing changes.

Private names used (Optuna 3.6), checked by ``dltune.ray_compat.check.missing()``: GPSampler's
``sample_relative`` reads the study's trials through ``Study._get_trials``, and the study handed
to it here answers that call with the lies added; ``GPSampler._n_startup_trials``, since a lie
before the GP models anything would only cost time.
"""
from __future__ import annotations

import inspect
import warnings
from collections.abc import Container
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import GPSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState


class _StudyWithLies:
    """``study``, with ``lies`` among its completed trials as GPSampler reads them."""

    def __init__(self, study: Study, lies: list[FrozenTrial]) -> None:
        self._study, self._lies = study, lies

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None, use_cache: bool = False) -> list[FrozenTrial]:
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        return trials + self._lies if states is None or TrialState.COMPLETE in states else trials


class ConstantLiarGPSampler(GPSampler):
    """``constant_liar``: model running trials at the completed trials' mean value (True)."""

    def __init__(self, *, constant_liar: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._constant_liar = constant_liar

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        lies = self._lies(study, trial, search_space) if self._constant_liar else []
        return super().sample_relative(_StudyWithLies(study, lies) if lies else study, trial, search_space)

    def _lies(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> list[FrozenTrial]:
        done = np.array([t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))], dtype=float)
        finite = done[np.isfinite(done)]  # GPSampler clamps an infinite value to the finite ones' range
        if len(done) < self._n_startup_trials or not len(finite):
            return []  # still sampling at random
        # a running trial asked under other distributions (another space, an enqueued value) is left out
        running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                   if t.number != trial.number and all(t.distributions.get(k) == d for k, d in search_space.items())]
        lie = float(np.mean(finite))
        return [optuna.trial.create_trial(params={k: t.params[k] for k in search_space}, distributions=search_space, value=lie)
                for t in running]


def missing() -> list[str]:
    """What of the above the installed Optuna lacks, each as 'where: name'."""
    with warnings.catch_warnings():  # Optuna 3.6 marks GPSampler experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = GPSampler()
    gone = [] if hasattr(sampler, "_n_startup_trials") else ["optuna.samplers.GPSampler: _n_startup_trials"]
    if not ("_get_trials" in inspect.getsource(GPSampler.sample_relative) and callable(getattr(Study, "_get_trials", None))):
        gone.append("optuna.samplers.GPSampler.sample_relative: reads trials through Study._get_trials")
    return gone
