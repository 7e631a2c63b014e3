"""Ray Tune schedulers changed where Ray offers no switch: HyperBand whose brackets end at
full fidelity, and a hook after each PBT exploit.

Private names used (Ray 2.60), checked by ``dltune.ray_compat.check.missing()``:
- ``ray.tune.schedulers.hyperband._Bracket`` with ``_r``, ``_n``, ``_cumul_r``, ``_halves``, ``_eta``,
  ``_max_t_attr``; the scheduler's ``_s_max_1``, ``_time_attr``, ``_get_r0``, ``_get_n0`` and ``_create_bracket``. Ray sets a bracket's
  first budget to ``int(max_t * eta**-s)`` and multiplies by ``eta`` at each halving, so the
  last rung falls short of ``max_t`` unless ``max_t`` is a power of ``eta`` (52 epochs, eta 3:
  the brackets end at 52, 51, 45 and 27).
- ``PopulationBasedTraining._exploit``: the one place an exploit happens; and the controller's
  ``_cached_trial_decisions``, reached through the ``_tune_controller`` of the wrapper Ray hands
  its schedulers: a trial exploited while its pause-save was in flight keeps a STOP there that
  ends it at its next checkpoint (docs/ray_upstream.md).
- HyperBand's ``_process_bracket`` (the halving), called for a bracket whose trials all wait at
  its rung when no result or removal will call it (``waits_on_nothing``), unless new trials still
  join it: the scheduler's ``_state["bracket"]`` (``still_filling``).
- HyperBand's ``_trial_info``, a bracket's ``_live_trials`` and ``trials_to_unpause``, and the
  controller's ``_set_trial_status`` (which Ray hands its schedulers): after a resume, a trial
  held at its rung is PAUSED again, as PBT pauses its own, and one its bracket had stopped is
  TERMINATED again.
"""
from __future__ import annotations

import math
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import HyperBandForBOHB, HyperBandScheduler, PopulationBasedTraining, TrialScheduler
from ray.tune.schedulers.hyperband import _Bracket


def rung(max_t: int, eta: float, halvings_left: int) -> int:
    """The budget of a rung ``halvings_left`` halvings below the top: ``max_t / eta**k`` rounded
    up (a trial pauses at the first epoch at or past it), at least 1; the top rung is ``max_t``."""
    return max(1, math.ceil(max_t / eta**halvings_left - 1e-9))


class _FullFidelityBracket(_Bracket):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.first_halves = kwargs["s"]  # halvings before any: a bracket that has halved takes no new trial

    def successive_halving(self, metric: str, metric_op: float) -> tuple[list[Any], list[Any]]:
        good, bad = super().successive_halving(metric, metric_op)
        self._r = self._cumul_r = rung(self._max_t_attr, self._eta, self._halves)
        return good, bad


class FullFidelity:
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
        # Tune asks this every step, before it starts any trial.
        for trial in tune_controller.get_trials():
            if trial.status in (Trial.PENDING, Trial.PAUSED) and not in_bracket(self, trial):
                # Stopped by its bracket before a kill, which Ray's experiment state did not record:
                # Tune's stop of a PAUSED trial (no actor) returns before it marks the trial for the
                # next save, so the resumed search has it PENDING and would train it again.
                tune_controller._set_trial_status(trial, Trial.TERMINATED)
        for band in self._hyperbands:  # type: ignore[attr-defined]
            for bracket in band:
                if bracket is None:
                    continue
                if bracket.finished():
                    # A bracket finishes on its last trial's last result, and Ray's cleanup_full then
                    # stops the trials paused at max_t; but one whose pause is still saving its
                    # checkpoint is RUNNING then, is skipped, and turns PAUSED later in a bracket that
                    # nothing processes again: Tune waits on it for ever. Stop it once its pause is done.
                    bracket.cleanup_full(tune_controller)  # stops the bracket's PAUSED trials, if any
                else:
                    hold_at_rung(tune_controller, bracket)
                    if waits_on_nothing(bracket) and not still_filling(self, bracket):  # type: ignore[arg-type]
                        self._process_bracket(tune_controller, bracket)  # type: ignore[attr-defined]
        return super().choose_trial_to_run(tune_controller, **kwargs)  # type: ignore[misc]


def in_bracket(scheduler: HyperBandScheduler, trial: Trial) -> bool:
    """Whether one of the scheduler's brackets holds ``trial`` (it keeps a trial it removed in ``_trial_info``)."""
    info = scheduler._trial_info.get(trial)
    return info is not None and trial in info[0]._live_trials


def waits_on_nothing(bracket: _Bracket) -> bool:
    """Whether every trial left in the bracket has reached its rung and waits there PAUSED, so no
    result will come to halve it. Ray halves a bracket on a result, or on a removal before its
    first halving only: a trial that fails or is stopped after it, while the others wait at the
    next rung, left them PAUSED for ever, and Tune waited on them."""
    trials = bracket.current_trials()
    return bool(trials) and bracket.cur_iter_done() and all(
        trial.status == Trial.PAUSED and not trial.is_saving and trial not in bracket.trials_to_unpause for trial in trials)


def still_filling(scheduler: HyperBandScheduler, bracket: _Bracket) -> bool:
    """Whether the bracket is the one new trials join, short of its size and not yet halved: the
    trials paused at its rung wait for the rest. A searcher that creates trials as slots free
    (BOHB's) fills a bracket one trial at a time; halved early, a bracket of 5 was judged on 1 or 2
    and passed them all (Ray halves the last, partly filled bracket of a finished search itself)."""
    return (bracket is scheduler._state["bracket"] and not bracket.filled()
            and bracket._halves == getattr(bracket, "first_halves", bracket._halves))


def hold_at_rung(tune_controller: Any, bracket: _Bracket) -> None:
    """A resumed search's trials come back PENDING, those a restored bracket held PAUSED at its
    rung too: run, they would train past the rung before the bracket decides, and the halving
    would then fail on them (Ray expects no PENDING trial at a rung). Such a trial is PAUSED again,
    to wait for the bracket's decision as it did before the kill."""
    for trial in bracket.current_trials():
        if trial.status == Trial.PENDING and not bracket.continue_trial(trial) and trial not in bracket.trials_to_unpause:
            tune_controller._set_trial_status(trial, Trial.PAUSED)


class FullFidelityHyperBand(FullFidelity, HyperBandScheduler):
    pass


class FullFidelityHyperBandForBOHB(FullFidelity, HyperBandForBOHB):
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
        saving = trial.is_saving
        super()._exploit(tune_controller, trial, trial_to_clone)  # type: ignore[misc]
        if saving:
            forget_stop_after_save(tune_controller, trial)
        self.after_exploit(trial)

    def after_exploit(self, trial: Any) -> None:
        """The hook; PBT's own behaviour is unchanged unless a subclass fills it in."""


def forget_stop_after_save(tune_controller: Any, trial: Any) -> None:
    """Drop the STOP that Ray queued for ``trial`` to run once its save resolves.

    An exploit pauses a trial still RUNNING; when that trial's pause-save is in flight (synchronous
    PBT: it reached the perturbation point just before the trial that completes the set),
    ``_schedule_trial_stop`` caches a STOP for after the save, then drops the save's future. The save
    never resolves, so the STOP waits for the next one: the restarted trial's first checkpoint,
    which ends it TERMINATED short of its last epoch."""
    controller = getattr(tune_controller, "_tune_controller", tune_controller)  # past Ray's scheduler-facing wrapper
    if controller._cached_trial_decisions.get(trial.trial_id) == TrialScheduler.STOP:
        del controller._cached_trial_decisions[trial.trial_id]


def missing() -> list[str]:
    """What of the above the installed Ray lacks, each as 'where: name'."""
    hyperband = HyperBandScheduler(max_t=9)
    gone = [f"ray.tune.schedulers.HyperBandScheduler: {name}" for name in ("_create_bracket", "_process_bracket", "_get_r0", "_get_n0", "_s_max_1", "_time_attr",
                                                                            "_state") if not hasattr(hyperband, name)]
    if "bracket" not in getattr(hyperband, "_state", {}):
        gone.append("ray.tune.schedulers.HyperBandScheduler: _state['bracket']")
    bracket = _Bracket(time_attr="t", max_trials=3, init_t_attr=3, max_t_attr=9, eta=3, s=1)
    gone += [f"ray.tune.schedulers.hyperband._Bracket: {name}" for name in ("_r", "_n", "_cumul_r", "_halves", "_eta", "_max_t_attr", "trials_to_unpause", "_live_trials")
             if not hasattr(bracket, name)]
    from ray.tune.execution.tune_controller import TrialRunnerWrapper, TuneController

    if not callable(getattr(TuneController, "_set_trial_status", None)):
        gone.append("ray.tune.execution.tune_controller.TuneController: _set_trial_status")
    if not callable(getattr(PopulationBasedTraining, "_exploit", None)):
        gone.append("ray.tune.schedulers.PopulationBasedTraining: _exploit")
    if "_cached_trial_decisions" not in TuneController.__init__.__code__.co_names:
        gone.append("ray.tune.execution.tune_controller.TuneController: _cached_trial_decisions")
    if "_tune_controller" not in TrialRunnerWrapper.__init__.__code__.co_names:
        gone.append("ray.tune.execution.tune_controller.TrialRunnerWrapper: _tune_controller")
    return gone
