"""Ray Tune schedulers changed where Ray offers no switch: HyperBand whose brackets end at
full fidelity, and a hook after each PBT exploit.

Private names used (Ray 2.60), checked by ``dltune.ray_compat.missing()``:
- ``ray.tune.schedulers.hyperband._Bracket`` with ``_r``, ``_n``, ``_cumul_r``, ``_halves``, ``_eta``,
  ``_max_t_attr``; the scheduler's ``_s_max_1``, ``_time_attr``, ``_get_r0``, ``_get_n0`` and ``_create_bracket``. Ray sets a bracket's
  first budget to ``int(max_t * eta**-s)`` and multiplies by ``eta`` at each halving, so the
  last rung falls short of ``max_t`` unless ``max_t`` is a power of ``eta`` (52 epochs, eta 3:
  the brackets end at 52, 51, 45 and 27).
- ``PopulationBasedTraining._exploit``: the one place an exploit happens.
"""
from __future__ import annotations

import math
from typing import Any

from ray.tune.schedulers import HyperBandForBOHB, HyperBandScheduler, PopulationBasedTraining
from ray.tune.schedulers.hyperband import _Bracket


def rung(max_t: int, eta: float, halvings_left: int) -> int:
    """The budget of a rung ``halvings_left`` halvings below the top: ``max_t / eta**k`` rounded
    up (a trial pauses at the first epoch at or past it), at least 1; the top rung is ``max_t``."""
    return max(1, math.ceil(max_t / eta**halvings_left - 1e-9))


class _FullFidelityBracket(_Bracket):
    def successive_halving(self, metric: str, metric_op: float) -> tuple[list[Any], list[Any]]:
        good, bad = super().successive_halving(metric, metric_op)
        self._r = self._cumul_r = rung(self._max_t_attr, self._eta, self._halves)
        return good, bad


class _FullFidelity:
    """Mixed into a HyperBand scheduler: bracket s has rungs max_t / eta**k for k = s..0."""

    _max_t_attr: int
    _eta: float
    _time_attr: str
    _stop_last_trials: bool

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[call-arg]
        self._get_r0 = lambda s: rung(self._max_t_attr, self._eta, s)

    def _create_bracket(self, s: int) -> _Bracket:
        return _FullFidelityBracket(time_attr=self._time_attr, max_trials=self._get_n0(s), init_t_attr=self._get_r0(s),  # type: ignore[attr-defined]
                                    max_t_attr=self._max_t_attr, eta=self._eta, s=s, stop_last_trials=self._stop_last_trials)

    def choose_trial_to_run(self, tune_controller: Any, **kwargs: Any) -> Any:
        # A bracket finishes on its last trial's last result, and Ray's cleanup_full then stops the
        # trials paused at max_t; but one whose pause is still saving its checkpoint is RUNNING then,
        # is skipped, and turns PAUSED later in a bracket that nothing processes again: Tune waits on
        # it for ever. Tune asks this every step: stop such a trial once its pause is done.
        for band in self._hyperbands:  # type: ignore[attr-defined]
            for bracket in band:
                if bracket is not None and bracket.finished():
                    bracket.cleanup_full(tune_controller)  # stops the bracket's PAUSED trials, if any
        return super().choose_trial_to_run(tune_controller, **kwargs)  # type: ignore[misc]


class FullFidelityHyperBand(_FullFidelity, HyperBandScheduler):
    pass


class FullFidelityHyperBandForBOHB(_FullFidelity, HyperBandForBOHB):
    pass


def hyperband_brackets(scheduler: HyperBandScheduler) -> list[tuple[int, list[int]]]:
    """(trials, the epoch of each rung) per bracket, read off the brackets the scheduler builds:
    each is filled with placeholder trials and halved until it ends."""
    out = []
    for s in range(scheduler._s_max_1):
        if scheduler._get_r0(s) == 0:  # Ray skips a bracket whose first budget rounds to 0
            continue
        bracket = scheduler._create_bracket(s)
        size = bracket._n
        for _ in range(size):
            bracket.add_trial(object())
        rungs = []
        while True:
            rungs.append(int(bracket._cumul_r))
            for i, trial in enumerate(bracket.current_trials()):
                bracket.update_trial_stats(trial, {scheduler._time_attr: bracket._cumul_r, "score": i})
            if bracket.finished() or bracket._halves == 0:  # with stop_last_trials=False a bracket never finishes
                break
            for trial in bracket.successive_halving("score", 1.0)[1]:
                bracket.cleanup_trial(trial)
        out.append((size, rungs))
    return out


class AfterExploit:
    """Mixed into PBT or PB2: ``after_exploit(trial)`` runs once ``trial`` has taken over its donor's
    checkpoint and config, before it restarts."""

    def _exploit(self, tune_controller: Any, trial: Any, trial_to_clone: Any) -> None:
        super()._exploit(tune_controller, trial, trial_to_clone)  # type: ignore[misc]
        self.after_exploit(trial)

    def after_exploit(self, trial: Any) -> None:
        """The hook; PBT's own behaviour is unchanged unless a subclass fills it in."""


def missing() -> list[str]:
    """What of the above the installed Ray lacks, each as 'where: name'."""
    gone = [f"ray.tune.schedulers.HyperBandScheduler: {name}" for name in ("_create_bracket", "_get_r0", "_get_n0", "_s_max_1", "_time_attr")
            if not hasattr(HyperBandScheduler(max_t=9), name)]
    bracket = _Bracket(time_attr="t", max_trials=3, init_t_attr=3, max_t_attr=9, eta=3, s=1)
    gone += [f"ray.tune.schedulers.hyperband._Bracket: {name}" for name in ("_r", "_n", "_cumul_r", "_halves", "_eta", "_max_t_attr")
             if not hasattr(bracket, name)]
    if not callable(getattr(PopulationBasedTraining, "_exploit", None)):
        gone.append("ray.tune.schedulers.PopulationBasedTraining: _exploit")
    return gone
