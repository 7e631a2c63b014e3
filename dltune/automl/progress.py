"""Job log and progress lines while FLAML searches.

FLAML, Ray (its daemons included), Optuna and the estimators print plenty; at
default verbosity all of it goes to ``job.log`` in the task directory, and
the terminal only gets our own lines: settings, the concurrency actually
used, periodic progress (elapsed/budget, trials done, best metric and
estimator) and where the outputs went.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from dltune import storage


class JobLog:
    """job.log: our own lines (redacted as written) plus, inside ``captured``, everything printed to stdout/stderr."""

    def __init__(self, path: str, quiet: bool) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._terminal: TextIO | None = None if quiet else _terminal()

    def write(self, text: str) -> None:
        os.write(self.fd, storage.redact(text).encode("utf-8"))

    def say(self, message: str) -> None:
        """One line to job.log and, unless quiet, to the terminal."""
        line = storage.redact(message)
        self.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        if self._terminal is not None:
            print(line, file=self._terminal, flush=True)

    def close(self) -> None:
        """Close the log and redact what the libraries wrote to it unfiltered."""
        if self.fd < 0:
            return
        os.close(self.fd)
        self.fd = -1
        if self._terminal not in (None, sys.stdout):
            self._terminal.close()
        redact_file(self.path)


def redact_file(path: str) -> None:
    """Rewrite a local text file with secrets replaced (a no-op when there are none)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    clean = storage.redact(text)
    if clean != text:
        storage.write_text(path, clean)


def _terminal() -> TextIO:
    """Where our lines go while ``captured`` points file descriptors 1 and 2 at job.log."""
    try:
        return os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    except (AttributeError, OSError, ValueError):  # a stdout without a file descriptor is not redirected
        return sys.stdout


@contextlib.contextmanager
def captured(log: JobLog) -> Iterator[None]:
    """Point stdout and stderr (file descriptors, so Ray's processes and C++ libraries too) at job.log."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    os.dup2(log.fd, 1)
    os.dup2(log.fd, 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


class TrialProgress:
    """Counts finished trials and prints a progress line every ``interval`` seconds.

    Trials arrive either from a thread following FLAML's trial log (one trial
    at a time: FLAML appends each trial as it finishes) or from a Ray Tune
    callback (parallel trials: FLAML only writes its log after the search).
    """

    def __init__(self, log: JobLog, metric: str, score: Callable[[float], float], time_budget: float) -> None:
        self.log, self.metric, self.score, self.time_budget = log, metric, score, time_budget
        self.interval = max(5.0, time_budget / 20)
        self.trials = 0
        self.best: tuple[float, str] | None = None  # (validation loss, estimator)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = time.time()
        self._follow: str | None = None
        self._offset = 0
        self._partial = ""
        self._last = ""

    def trial(self, estimator: str, val_loss: float) -> None:
        with self._lock:
            self.trials += 1
            if self.best is None or val_loss < self.best[0]:
                self.best = (val_loss, estimator)

    def line(self) -> str:
        with self._lock:
            text = f"progress: {time.time() - self._started:.0f}s / {self.time_budget:g}s, {self.trials} trials"
            if self.best is not None:
                text += f", best {self.metric} {self.score(self.best[0]):.4f} ({self.best[1]})"
        return text

    def report(self) -> None:
        """Log the progress line unless it would repeat the previous one word for word."""
        text = self.line()
        if text != self._last:
            self.log.say(text)
            self._last = text

    @contextlib.contextmanager
    def running(self, follow: str | None = None) -> Iterator[TrialProgress]:
        """Print progress lines in a background thread; ``follow`` is a FLAML trial log to read trials from."""
        self._follow, self._started = follow, time.time()
        thread = threading.Thread(target=self._loop, name="automl-progress", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            self._read_new_trials()

    def _loop(self) -> None:
        last = time.time()
        while not self._stop.wait(1.0):
            self._read_new_trials()
            if time.time() - last >= self.interval:
                self.report()
                last = time.time()

    def _read_new_trials(self) -> None:
        if self._follow is None:
            return
        try:
            with open(self._follow, encoding="utf-8") as f:
                f.seek(self._offset)
                chunk = f.read()
                self._offset = f.tell()
        except FileNotFoundError:
            return
        *lines, self._partial = (self._partial + chunk).split("\n")
        for record in map(json.loads, filter(None, lines)):
            if "learner" in record:  # checkpoint lines only name the best record
                self.trial(record["learner"], record["validation_loss"])


def ray_progress_callback(progress: TrialProgress) -> Any:
    """A Ray Tune callback feeding ``progress`` as parallel trials complete (Ray imported lazily)."""
    from ray.tune import Callback

    class _TrialDone(Callback):
        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            result = trial.last_result or {}
            if "val_loss" in result:
                config = result.get("config", {})
                progress.trial(config.get("ml", config).get("learner", "?"), result["val_loss"])

    return _TrialDone()


def read_trial_log(path: str) -> list[dict[str, Any]]:
    """The trial records of a FLAML trial log, in the order FLAML wrote them."""
    with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [r for r in records if "learner" in r]
