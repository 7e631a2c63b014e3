"""Resource plan for a search: what one trial holds, whether it can ever fit, how many fit at once.

A single-worker trial runs the loop inside the Tune trial and holds one
worker's resources. A multi-worker trial is a small driver plus a Ray Train
worker group. The driver reserves no CPU, so it can never hold a CPU its own
workers wait for; it reserves DRIVER_MEMORY of Ray's memory resource instead
(Tune needs a non-empty bundle, and the driver process does use memory).
Concurrency is capped so that every admitted trial can get all its workers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from dltune.config import Config
from dltune.errors import UserError
from dltune.launch.ray_cluster import HEAD_AVOIDING_RESOURCE, worker_resources


DRIVER_MEMORY = 256 * 2**20


class ResourcePlanError(UserError):
    """A trial that can never be scheduled on this cluster."""


@dataclass
class ResourcePlan:
    driver: dict[str, float]
    worker: dict[str, float]
    num_workers: int
    cluster: dict[str, float]
    concurrency: int
    notes: list[str] = field(default_factory=list)

    @property
    def per_trial(self) -> dict[str, float]:
        total = dict(self.driver)
        for key, value in self.worker.items():
            total[key] = total.get(key, 0.0) + value * self.num_workers
        return total

    @property
    def uses_train_controller(self) -> bool:
        return self.num_workers > 1

    def describe(self) -> str:
        kind = "1 worker inside the trial (no Train controller)" if not self.uses_train_controller else f"{self.num_workers} Ray Train workers + a 0-CPU driver"
        need = ", ".join(_fmt(k, v) for k, v in sorted(self.per_trial.items()) if v)
        have = ", ".join(f"{k} {v:g}" for k, v in sorted(self.cluster.items()) if k in ("CPU", "GPU", HEAD_AVOIDING_RESOURCE))
        lines = [f"each trial: {kind}; needs {need}", f"cluster: {have}", f"concurrent trials: {self.concurrency}"]
        return "\n".join(lines + self.notes)


def _fmt(key: str, value: float) -> str:
    return f"memory {value / 2**20:.0f} MiB" if key == "memory" else f"{key} {value:g}"


def _fits(need: dict[str, float], have: dict[str, float]) -> int:
    """How many copies of ``need`` fit in ``have`` (ignoring placement across nodes)."""
    counts = [math.floor(have.get(k, 0.0) / v + 1e-9) for k, v in need.items() if v > 0]
    return min(counts) if counts else 10**6


def plan_resources(cfg: Config, cluster: dict[str, float], num_trials: int) -> ResourcePlan:
    worker = worker_resources(cfg)
    workers = cfg.scaling.num_workers
    driver: dict[str, float] = {"CPU": 0.0, "memory": float(DRIVER_MEMORY)} if workers > 1 else {}
    plan = ResourcePlan(driver=driver, worker=worker, num_workers=workers, cluster=cluster, concurrency=0)
    per_trial = plan.per_trial
    for key, value in per_trial.items():
        if value > cluster.get(key, 0.0) + 1e-9:
            detail = f"{workers} worker(s) x {worker.get(key, 0):g} {key}"
            hint = " (start worker nodes with --resources='{\"worker_node\": 1}' or set scaling.avoid_head=false)" if key == HEAD_AVOIDING_RESOURCE else ""
            raise ResourcePlanError(f"resource plan: one trial needs {_fmt(key, value)} ({detail}) but the cluster has {_fmt(key, cluster.get(key, 0.0))}{hint}")
    fit = _fits(per_trial, cluster)
    limit = cfg.tune.max_concurrent_trials
    plan.concurrency = max(1, min(fit, num_trials) if limit == "auto" else min(int(limit), fit))
    if limit != "auto" and int(limit) > fit:
        plan.notes.append(f"note: tune.max_concurrent_trials={limit} lowered to {fit}, what the cluster holds with every trial's workers")
    return plan
