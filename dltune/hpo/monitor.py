"""Driver-side view of a running search: live progress for people and one
TensorBoard log dir with a run per trial (scalars per epoch + hparams)."""
from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, TextIO

from ray.tune import Callback
from torch.utils.tensorboard.summary import hparams as hparams_summaries

from dltune.hpo.budget import Budget
from dltune.hpo.event_file import EventFile
from dltune.hpo.mode import rank_key
from dltune.train.progress import fmt_duration

SKIP_SCALARS = {"epoch", "training_iteration", "timestamp", "time_this_iter_s", "time_total_s", "pid", "time_since_restore", "iterations_since_restore", "checkpoint_dir_name"}


def _fmt_config(config: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in config.items())


class SearchMonitor(Callback):
    def __init__(self, metric: str, mode: str, tb_dir: str, time_budget_s: float, num_samples: int, verbose: bool, stream: TextIO | None = None,
                 budget: Budget | None = None, started: float | None = None) -> None:
        self.metric = metric
        self.budget = budget  # its spend so far goes into each progress line
        self.costs: dict[str, float] = {}
        self.mode = mode
        self.tb_dir = tb_dir
        self.time_budget_s = time_budget_s
        self.num_samples = num_samples
        self.verbose = verbose
        self.stream = stream  # None: sys.stdout at the time of writing (the Tuner pickles its callbacks)
        self.live = verbose and (stream or sys.stdout).isatty()
        self.started = time.time() if started is None else started  # this driver's start
        self.spent_before = 0.0  # the seconds killed drivers of this search ran, up to their last save
        self.last_line = 0.0
        self.last_news = ""  # the last line, less its clock
        self.runs: dict[str, EventFile] = {}
        self.trial_best: dict[str, float] = {}
        self.best_configs: dict[str, dict[str, Any]] = {}  # each trial's config when it reported its best (PBT changes it)
        self.failed: set[str] = set()
        self.status: dict[str, str] = {}

    # --- Ray Tune hooks ---------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.status[trial.trial_id] = "running"
        self.failed.discard(trial.trial_id)  # a failed trial run again by a resume
        self._line(trials)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        self._scalars(trial, result)
        if self.budget is not None:
            self.costs[trial.trial_id] = self.budget.after(self.costs.get(trial.trial_id, 0.0), result)
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            prev = self.trial_best.get(trial.trial_id)
            if prev is None or self._better(value, prev):
                self.trial_best[trial.trial_id] = value
                self.best_configs[trial.trial_id] = dict(trial.config)
        self._line(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.status[trial.trial_id] = "done"
        self._close(trial)
        self._line(trials, force=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.status[trial.trial_id] = "error"
        self.failed.add(trial.trial_id)
        self._close(trial)
        self._line(trials, force=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        for trial in trials:
            self._close(trial)
        for run in self.runs.values():  # a run whose trial Tune no longer lists
            run.close()
        self.runs.clear()
        self._line(trials, force=True)
        if self.live:
            self.out.write("\n")

    def get_state(self) -> dict[str, Any]:
        """Saved with the experiment: a resumed search's clock, progress and best so far go on from the killed driver's."""
        best = {"trial_best": dict(self.trial_best), "best_configs": dict(self.best_configs), "failed": sorted(self.failed)}
        return {"elapsed_s": self.elapsed(), **best, **({"costs": dict(self.costs)} if self.budget is not None else {})}

    def set_state(self, state: dict[str, Any]) -> None:
        self.costs = dict(state.get("costs", {}))
        self.spent_before = float(state.get("elapsed_s", 0.0))
        self.trial_best = dict(state.get("trial_best", {}))
        self.best_configs = dict(state.get("best_configs", {}))
        self.failed = set(state.get("failed", []))

    def best(self) -> tuple[float, dict[str, Any]] | None:
        """The best value so far and its config, ranked as results.csv's best is: a failed trial only
        where no other trial reported a value (a diverging trial's last values before it broke are no best)."""
        if not self.trial_best:
            return None
        trial_id = min(self.trial_best, key=lambda tid: rank_key(self.trial_best[tid], tid in self.failed, self.mode))
        return self.trial_best[trial_id], self.best_configs.get(trial_id, {})

    def elapsed(self) -> float:
        """Seconds the search has run, in every driver it had (time between a kill and its resume not counted)."""
        return self.spent_before + time.time() - self.started

    # --- helpers ------------------------------------------------------------
    @property
    def out(self) -> TextIO:
        return self.stream or sys.stdout

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b

    def _run(self, trial: Any, step: int) -> EventFile:
        if trial.trial_id not in self.runs:
            # purge_step: a trial resumed by a new driver hides what the killed one logged from this step on.
            self.runs[trial.trial_id] = EventFile(os.path.join(self.tb_dir, trial.trial_id), purge_step=step)
        return self.runs[trial.trial_id]

    def _scalars(self, trial: Any, result: dict[str, Any]) -> None:
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        values = {key: value for key, value in result.items()
                  if key not in SKIP_SCALARS and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)}
        self._run(trial, step).scalars(step, values)

    def _close(self, trial: Any) -> None:
        run = self.runs.pop(trial.trial_id, None)
        if run is None:
            return
        hparams = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in trial.config.items()}
        best = self.trial_best.get(trial.trial_id)
        metrics = {f"hparam/{self.metric}": best if best is not None else float("nan")}
        # What SummaryWriter.add_hparams writes, but into this run's own file, not a second run.
        run.summaries(hparams_summaries(hparams, metrics))
        run.scalars(0, metrics)
        run.close()

    def counts(self, trials: list) -> dict[str, int]:
        out = {"done": 0, "running": 0, "pending": 0, "errored": 0}
        for t in trials:
            state = t.status
            key = {"TERMINATED": "done", "RUNNING": "running", "ERROR": "errored"}.get(state, "pending")
            out[key] += 1
        out["pending"] += max(0, self.num_samples - len(trials)) if self.num_samples else 0
        return out

    def _line(self, trials: list, force: bool = False) -> None:
        if not self.verbose:
            return
        now = time.time()
        if not force and now - self.last_line < (0.5 if self.live else 10.0):
            return
        c = self.counts(trials)
        top = self.best()
        best = f" | best {self.metric} {top[0]:.4f} ({_fmt_config(top[1])})" if top is not None else ""
        news = f"trials: {c['done']} done, {c['running']} running, {c['pending']} pending, {c['errored']} errored{best}"
        if force and news == self.last_news:
            return  # a trial's last result has just said it: no second line of the same
        self.last_line, self.last_news = now, news
        elapsed = fmt_duration(self.elapsed())
        budget = f" / {fmt_duration(self.time_budget_s)}" if self.time_budget_s else ""
        spent = f", budget {sum(self.costs.values()):.0f}/{self.budget.total:g} {self.budget.cost}" if self.budget is not None else ""
        text = f"[{elapsed}{budget}{spent}] {news}"
        out = self.out
        if self.live:
            out.write("\r\033[K" + text[: os.get_terminal_size(out.fileno()).columns - 1])
        else:
            out.write(text + "\n")
        out.flush()
