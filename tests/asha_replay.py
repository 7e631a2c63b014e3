"""ASHA's and HyperBand's decisions replayed offline from the trials' own result.json files, as an uninterrupted
search with the full history would have made them, and compared with what the search did.

The search runs one trial at a time, so the order Tune handed results to the scheduler is the
trials' order (Ray numbers them as it creates them), each epoch by epoch."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from conftest import trial_results


@dataclass
class Replay:
    decisions: int  # rung results judged
    past_stop: list[str]  # trials that trained on past a rung where the full history says stop
    wrongly_stopped: list[str]  # trials stopped at a rung the full history lets them through


def replay_asha(exp: Path, metric: str, mode: str, max_t: int, grace_period: int, reduction_factor: int) -> Replay:
    scheduler = ASHAScheduler(time_attr="epoch", metric=metric, mode=mode, max_t=max_t, grace_period=grace_period, reduction_factor=reduction_factor)
    rungs = {grace_period * reduction_factor**k for k in range(max_t) if grace_period * reduction_factor**k < max_t}  # those ASHA judges
    out = Replay(0, [], [])
    for trial_id, history in sorted(trial_results(exp).items()):
        seen: dict[int, dict] = {}
        for result in history:  # a trial resumed from a checkpoint may report an epoch twice: the first counts
            seen.setdefault(result["epoch"], result)
        trial = Trial("replay", stub=True, trial_id=trial_id)
        scheduler.on_trial_add(None, trial)
        stop_at = None
        for epoch in sorted(seen):
            out.decisions += epoch in rungs
            if scheduler.on_trial_result(None, trial, seen[epoch]) == TrialScheduler.STOP:
                stop_at = epoch
                break
        if stop_at is None:
            scheduler.on_trial_complete(None, trial, seen[max(seen)])
        last = max(seen)
        if stop_at is not None and last > stop_at:
            out.past_stop.append(trial_id)
        elif last < min(stop_at or max_t, max_t):
            out.wrongly_stopped.append(trial_id)
    return out


def replay_hyperband(exp: Path, metric: str, mode: str, max_t: int, reduction_factor: int, for_bohb: bool = False) -> Replay:
    """dltune's HyperBand (full-fidelity rungs) replayed: trials fill its brackets in the order Ray
    created them, and at each rung a bracket keeps the best ceil(n / eta) of its n places by the
    value each reported there. Synchronous halving judges values, not their order, so any
    concurrency replays alike. ``for_bohb``: HyperBand for BOHB, which fills its largest bracket first."""
    from dltune.ray_compat.schedulers import FullFidelityHyperBand, hyperband_brackets

    brackets = hyperband_brackets(FullFidelityHyperBand(time_attr="epoch", metric=metric, mode=mode, max_t=max_t, reduction_factor=reduction_factor))
    if for_bohb:
        brackets.reverse()
    histories = {tid: {r["epoch"]: r for r in reversed(h)} for tid, h in trial_results(exp).items()}  # an epoch reported twice: the first counts
    # Ray names a trial's dir <trainable>_<id>_<n>_<params>, n counting trials as it creates them
    created = {tid: int(m.group(1)) for d in exp.iterdir() for tid in histories if (m := re.search(rf"_{re.escape(tid)}_(\d+)_", d.name))}
    order = sorted(histories, key=lambda tid: created[tid])
    sign = 1.0 if mode == "min" else -1.0
    out = Replay(0, [], [])
    start = 0
    while start < len(order):
        for size, rungs in brackets:
            members, start = order[start:start + size], start + size
            places, alive, expected = size, list(members), {}
            for rung in rungs[:-1]:
                places = math.ceil(places / reduction_factor)
                ranked = sorted(alive, key=lambda tid: sign * histories[tid][rung][metric])
                out.decisions += len(alive)
                expected.update({tid: rung for tid in ranked[places:]})
                alive = ranked[:places]
            expected.update({tid: rungs[-1] for tid in alive})
            for tid in members:
                last = max(histories[tid])
                if last > expected[tid]:
                    out.past_stop.append(tid)
                elif last < expected[tid]:
                    out.wrongly_stopped.append(tid)
            if start >= len(order):
                break
    return out
