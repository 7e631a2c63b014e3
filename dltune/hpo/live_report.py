"""report.html rewritten while the search runs, so that a user can open it at any time.

A Tune callback starts each rewrite as a child process (``python -m dltune.report.live``) at most
every ``output.report_every_s`` seconds, one at a time, and never waits on it: building the page
for a thousand trials takes seconds, which the Tune loop must not spend. The child reads the trial
files the search has written so far, in the driver's staging dir, where Ray writes them first, and in
the experiment dir; the driver hands it what only the driver knows yet (the plan and how each
finished trial ended). The page ends by the final report, written after the search,
so the experiment's end stops a rewrite still under way. A remote search's child also copies the
local study.journal beside it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from ray.tune import Callback

COUNTS = ("completed", "early_stopped", "error", "running", "pending")  # the summary counts a running search knows


class LiveReport(Callback):
    def __init__(self, exp_dir: str, every_s: float, plan: dict[str, Any], max_epochs: int, journal: tuple[str, str] | None) -> None:
        self.exp_dir, self.every_s, self.plan, self.max_epochs, self.journal = exp_dir, every_s, plan, max_epochs, journal
        self._init_child()

    def _init_child(self) -> None:
        self._child: subprocess.Popen | None = None
        self._began: float | None = None  # wall clock, at the search's first step
        self._last = 0.0
        self.broken = False

    def __getstate__(self) -> dict[str, Any]:
        return {k: self.__dict__[k] for k in ("exp_dir", "every_s", "plan", "max_epochs", "journal")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_child()

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.time()
        if self._began is None:
            self._began = self._last = now
        if self._child is not None:
            if self._child.poll() is None:
                return
            self.broken = self._child.returncode != 0  # the child said why, in one line
            self._child = None
        if self.broken or not self.every_s or now - self._last < self.every_s:
            return
        self._last = now
        self._start(trials, now - self._began)

    def _start(self, trials: list, elapsed: float) -> None:
        ends = {t.trial_id: end for t in trials if (end := self._end(t)) is not None}
        states = Counter(ends.get(t.trial_id, "pending" if t.status == "PENDING" else "running") for t in trials)
        summary = {**self.plan, "status": "running", "trials": len(trials), "wall_time_s": round(elapsed, 3), **{count: states[count] for count in COUNTS}}
        orders = {"dir": self.exp_dir, "staging": trials[0].local_experiment_path if trials else None, "summary": summary, "ends": ends,
                  "journal": list(self.journal) if self.journal else None}
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}  # fANOVA's forest, beside the trials
        self._child = subprocess.Popen([sys.executable, "-m", "dltune.report.live"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
        assert self._child.stdin is not None
        with self._child.stdin:
            self._child.stdin.write(json.dumps(orders, default=str).encode())

    def _end(self, trial: Any) -> str | None:
        """How a finished trial ended, as results.csv will say; None while it may run on."""
        if trial.status == "ERROR":
            return "error"
        if trial.status != "TERMINATED":
            return None
        epoch = int((trial.last_result or {}).get("epoch") or 0)
        return "completed" if epoch >= self.max_epochs else "early_stopped"

    def close(self) -> None:
        """Stop a rewrite still under way (the final report replaces it)."""
        if self._child is not None:
            if self._child.poll() is None:
                self._child.terminate()
            self._child.wait()
            self._child = None

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.close()
