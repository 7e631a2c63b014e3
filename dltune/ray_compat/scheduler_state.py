"""A scheduler's state, carried across a driver kill.

Ray Tune restores a searcher on resume, but builds the scheduler afresh from tuner.pkl:
ASHA's rungs, HyperBand's brackets, the median rule's history and PBT's population start
empty, so a resumed search lets through trials the full history would stop, and stops others.

``SchedulerState`` is a Tune callback holding the scheduler. Tune asks callbacks for their state
in the same save as the experiment state, right after it; it writes that state atomically (a
temp file renamed into place) and hands it back on resume, before any trial runs again. The
snapshot is:
- for a scheduler with its own save/restore (ASHA), what it saves;
- for any other, its attributes, pickled with each Trial as its id (the resumed trials are new
  objects), the scheduler as itself (a budget function may close over it), and a PBT save still
  in flight as the checkpoint it had resolved to, or none (PBT then skips that donor once, as it
  does for a save that resolved to nothing). A checkpoint it names that is gone from storage
  by the resume (the keep policy deleted it after the save, or the resume's redo of epochs
  the scheduler never judged did) comes back as none too: an exploit would copy a missing dir.

Each snapshot is tagged with the controller step it was taken in, which Ray's experiment state
records too. The last two are kept, so a sync that copied this file and not the experiment
state still finds the snapshot matching the experiment state's step.

The snapshot of the experiment state's own step is put back. A driver killed after Ray wrote
the experiment state and before it renamed this state into place leaves the previous whole
save: its newest snapshot, of an earlier step, is put back then, with a warning line. ASHA then
records the rung results its trials reported in between, read back from their result.json on
storage up to each trial's last result in the experiment state (``catch_up``); for the other
schedulers those results are in neither save. Tune brings the trials a HyperBand bracket held
paused at a rung back as pending, on which a restored bracket fails; dltune's HyperBand
(``FullFidelity``) pauses them again before Tune can start one, so its brackets are restored,
and a plugin HyperBand's start afresh, which the resume says.

Private names used (Ray 2.60), checked by ``dltune.ray_compat.check.missing()``: ASHA's and
HyperBand's ``_trial_info``, the trials each knows (both drop one that failed); ASHA's
``_time_attr``, ``_metric`` and ``_metric_op``, with which it records a result at a rung. A save PBT
keeps in flight is recognised and read through dltune.ray_compat.
"""
from __future__ import annotations

import io
import os
import pickle
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from ray import cloudpickle
from ray.tune import Callback, Checkpoint
from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler, HyperBandScheduler, TrialScheduler

from dltune.ray_compat import is_pending_save, saved_checkpoint, stored_results
from dltune.ray_compat.schedulers import FullFidelity, in_bracket
from dltune.storage import exists_on

KEPT = 2
RESTORED = "restored as it was at the last saved step"
OWN_SAVE, ATTRIBUTES = "save", "attributes"


def _saves_itself(scheduler: TrialScheduler) -> bool:
    return type(scheduler).save is not TrialScheduler.save


class _Pickler(cloudpickle.Pickler):
    def __init__(self, file: io.BytesIO, scheduler: TrialScheduler) -> None:
        super().__init__(file)
        self.scheduler = scheduler

    def persistent_id(self, obj: Any) -> Any:
        if obj is self.scheduler:
            return ("scheduler",)
        if isinstance(obj, Trial):
            return ("trial", obj.trial_id)
        if is_pending_save(obj):  # a PBT save in flight outlives no driver: what it saved, if it has
            obj = saved_checkpoint(obj)
            if obj is None:
                return ("checkpoint", None)
        if isinstance(obj, Checkpoint):  # by path: pickled whole, it would come back here
            return ("checkpoint", (obj.path, obj.filesystem))
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, scheduler: TrialScheduler, trials: dict[str, Trial]) -> None:
        super().__init__(file)
        self.scheduler, self.trials = scheduler, trials

    def persistent_load(self, pid: Any) -> Any:
        if pid[0] == "scheduler":
            return self.scheduler
        if pid[0] == "checkpoint":  # one deleted since the save (the keep policy, the resume's redo) comes back as none
            path, fs = pid[1] or (None, None)
            return Checkpoint(path, filesystem=fs) if path is not None and exists_on(fs, path) else None
        if pid[1] not in self.trials:  # ("trial", id)
            raise LookupError(f"it names trial {pid[1]}, which the experiment state does not have")
        return self.trials[pid[1]]


def snapshot(scheduler: TrialScheduler) -> tuple[str, bytes]:
    """(how it was taken, the bytes) of the scheduler's state now."""
    if _saves_itself(scheduler):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "scheduler")
            scheduler.save(path)
            with open(path, "rb") as f:
                return OWN_SAVE, f.read()
    buffer = io.BytesIO()
    _Pickler(buffer, scheduler).dump(scheduler.__dict__)
    return ATTRIBUTES, buffer.getvalue()


def restore(scheduler: TrialScheduler, kind: str, data: bytes, trials: list[Trial]) -> None:
    """Put a snapshot back into ``scheduler``, its trials resolved among ``trials``."""
    if kind == OWN_SAVE:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "scheduler")
            with open(path, "wb") as f:
                f.write(data)
            scheduler.restore(path)
    else:
        scheduler.__dict__.update(_Unpickler(io.BytesIO(data), scheduler, {t.trial_id: t for t in trials}).load())


class SchedulerState(Callback):
    """Saves the scheduler with every experiment checkpoint; after a resume, puts the matching
    snapshot back at the first step, once Tune has re-added the trials and before any reports."""

    def __init__(self, scheduler: TrialScheduler, verbose: bool) -> None:
        self.scheduler = scheduler
        self.verbose = verbose
        self.step = 0  # the controller's step, as its experiment state records it
        self.snapshots: list[tuple[int, str, bytes]] = []
        self.pending = False
        self.unsaved = False  # the last save could not take a snapshot (said once)

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self.pending:
            self.pending = False
            self._restore(iteration, trials)
        self.step = iteration

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.step = iteration  # the final save, after the last step, is tagged with this

    def get_state(self) -> dict[str, Any]:
        if starts_afresh(self.scheduler):
            return {"snapshots": []}  # not restored; the resume still says so
        try:
            taken = snapshot(self.scheduler)
        except Exception as e:  # e.g. a plugin scheduler holding a lock: the search goes on, a resume starts it afresh
            if not self.unsaved:
                _warn(f"{type(self.scheduler).__name__}'s state cannot be saved ({type(e).__name__}: {e}); a --resume would start it afresh", "")
            self.snapshots, self.unsaved = [], True
        else:
            kept = [s for s in self.snapshots if s[0] != self.step]
            self.snapshots, self.unsaved = [*kept, (self.step, *taken)][-KEPT:], False
        return {"snapshots": list(self.snapshots)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.snapshots = list(state["snapshots"])
        self.pending = True

    def _restore(self, step: int, trials: list[Trial]) -> None:
        name = type(self.scheduler).__name__
        afresh = starts_afresh(self.scheduler)
        if afresh:
            _warn(f"{name}'s {afresh}")
            return
        # the experiment state's own step; else the newest before it: the driver died after saving
        # the experiment state and before this state's rename (a newer one belongs to no saved trials)
        usable = [s for s in self.snapshots if s[0] <= step]
        if not usable:
            _warn(f"no saved state of {name} matches the experiment state (step {step}) or precedes it: it starts afresh")
            return
        saved_at, kind, data = usable[-1]
        try:
            restore(self.scheduler, kind, data, trials)
        except Exception as e:  # a state this scheduler cannot take back: say so rather than half-restore it
            _warn(f"the saved state of {name} could not be restored ({type(e).__name__}: {e}); it starts afresh")
            return
        readd_forgotten(self.scheduler, trials)
        if saved_at < step:
            caught_up = catch_up(self.scheduler, trials)
            _warn(f"{name} restored as it was at step {saved_at}, the last whole save before the experiment state's step {step} "
                  "(the driver died while saving it): " + ("the rung results reported in between were read back from the trials' result.json"
                                                           if caught_up else "results reported in between are not in it"))
        elif self.verbose:
            print(f"resume: {name} {RESTORED} ({step})", flush=True)


def catch_up(scheduler: TrialScheduler, trials: list[Trial]) -> bool:
    """ASHA put back from a save older than the experiment state: each trial's results up to its
    last one in the experiment state, from its result.json on storage, are recorded at the rungs
    they reach, as ASHA records them (a rung already holding the trial is passed over; the first
    report of an epoch counts). False for another scheduler, which stays as saved."""
    if not isinstance(scheduler, AsyncHyperBandScheduler):
        return False
    time_attr, metric, sign = scheduler._time_attr, scheduler._metric, scheduler._metric_op
    for trial in trials:
        last = trial.last_result.get(time_attr)
        if last is None:
            continue
        ended = trial.trial_id not in scheduler._trial_info  # ASHA forgets a trial once it completes
        if ended:
            scheduler.on_trial_add(None, trial)
        bracket, seen = scheduler._trial_info[trial.trial_id], set()
        for result in stored_results(trial):
            t = result.get(time_attr)
            if t is not None and t <= last and t not in seen and metric in result:
                seen.add(t)
                bracket.on_result(trial, t, sign * result[metric])
        if ended:
            del scheduler._trial_info[trial.trial_id]
    return True


def starts_afresh(scheduler: TrialScheduler) -> str | None:
    """Why this scheduler is not restored on a resume, or None where it is."""
    if isinstance(scheduler, HyperBandScheduler) and not isinstance(scheduler, FullFidelity):
        return "brackets start afresh: the trials they held paused at a rung come back pending, which a restored bracket cannot take"
    return None


def readd_forgotten(scheduler: TrialScheduler, trials: list[Trial]) -> None:
    """ASHA and HyperBand forget a trial that failed for good; Tune resumes it (resume_errored), so
    it is added again (to HyperBand as a new trial, in a bracket with room). A HyperBand trial
    that never failed and is in no bracket was stopped by it (see ``in_bracket``'s caller)."""
    forgotten: Callable[[Trial], bool]
    if isinstance(scheduler, AsyncHyperBandScheduler):
        forgotten = lambda trial: trial.trial_id not in scheduler._trial_info
    elif isinstance(scheduler, HyperBandScheduler):
        forgotten = lambda trial: trial.num_failures > 0 and not in_bracket(scheduler, trial)
    else:
        return
    for trial in trials:
        if trial.status != Trial.TERMINATED and forgotten(trial):
            scheduler.on_trial_add(None, trial)  # neither uses the controller


def _warn(text: str, topic: str = "resume: ") -> None:
    print(f"dltune: warning: {topic}{text}", file=sys.stderr, flush=True)


def missing() -> list[str]:
    """What of the above the installed Ray lacks, each as 'where: name'."""
    schedulers = (AsyncHyperBandScheduler(time_attr="t", metric="m", mode="max", max_t=9), HyperBandScheduler(time_attr="t", metric="m", mode="max", max_t=9))
    gone = [f"ray.tune.schedulers.{type(s).__name__}: _trial_info" for s in schedulers if not isinstance(getattr(s, "_trial_info", None), dict)]
    return gone + [f"ray.tune.schedulers.AsyncHyperBandScheduler: {name}" for name in ("_time_attr", "_metric", "_metric_op")
                   if not hasattr(schedulers[0], name)]
