"""Ray's log lines, and those of the libraries it drives, into a file of the experiment.

People read dltune's own lines on the terminal; Ray's start-up notices, its
token warning and its libraries' chatter (Optuna's "A new study created in
memory", FLAML's) go to the experiment's ray.log, for the length of a run.
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import tempfile
from collections.abc import Iterator

from dltune import storage

RAY_LOG = "ray.log"
LOGGERS = ("ray", "ray.tune", "ray.train", "ray.data", "flaml", "optuna", "dltune")
RUN_LOG = logging.getLogger("dltune")  # what dltune keeps for the log only: a failure's full text
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _terminal(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)


def _file_handler(path: str) -> logging.FileHandler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(FORMAT))
    return handler


def _on_worker_console(record: logging.LogRecord) -> bool:
    """Ray Train's own lines up to WARNING (its ERROR is a failed training function, which the
    driver reports), everyone else's from WARNING up."""
    if record.name == "ray.train" or record.name.startswith("ray.train."):
        return record.levelno < logging.ERROR
    return record.levelno >= logging.WARNING


def train_worker_lines(log_path: str | None) -> None:
    """A Ray Train worker's console, which streams to the driver beside rank 0's epoch lines,
    for the worker's life (a process of this run only):
    - Ray Train's ERROR line with a failed training function's traceback stays off it: the
      driver reports the failure in one line and keeps the text in the experiment's log;
    - INFO lines reaching the root logger (Ray Train's one per report, under a logger named
      by file path that no LoggingConfig reaches) stay off it.
    ``log_path`` (rank 0 of a run on a local or shared file system): those lines go there.
    Ray's session log files still get every record."""
    train, root = logging.getLogger("ray.train"), logging.getLogger()
    for handler in filter(_terminal, {*train.handlers, *root.handlers}):  # Ray Train gives both one console handler
        if _on_worker_console not in handler.filters:
            handler.addFilter(_on_worker_console)
    if log_path is None or any(isinstance(h, logging.FileHandler) and h.baseFilename == os.path.abspath(log_path) for h in root.handlers):
        return
    handler = _file_handler(log_path)
    handler.setLevel(logging.INFO)
    for logger in (train, root):
        logger.addHandler(handler)


@contextlib.contextmanager
def routed_to(log_path: str) -> Iterator[None]:
    """Send LOGGERS to ``log_path`` instead of the terminal until the block ends, then put
    their handlers back as they were."""
    # Ray adds its terminal handler when first imported, Optuna on first use: let both happen
    # now, so the handlers are there to be taken off.
    import ray  # noqa: F401

    if importlib.util.find_spec("optuna") is not None:
        import optuna.logging

        optuna.logging.get_logger("optuna")
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    handler = _file_handler(log_path)
    saved = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, list(logger.handlers), logger.propagate))
        for old in filter(_terminal, list(logger.handlers)):
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, handlers, propagate in saved:
            added = [h for h in logger.handlers if h is not handler and h not in handlers]
            logger.handlers = [*handlers, *added]  # as they were, in their order, then any others added meanwhile
            logger.propagate = propagate
        handler.close()


@contextlib.contextmanager
def into_experiment(exp_dir: str) -> Iterator[None]:
    """routed_to the experiment's ray.log; a remote experiment gets the file when the block ends."""
    if not storage.is_remote(exp_dir):
        with routed_to(os.path.join(exp_dir, RAY_LOG)):
            yield
        return
    with tempfile.TemporaryDirectory(prefix="dltune-ray-log-") as tmp:
        local = os.path.join(tmp, RAY_LOG)
        try:
            with routed_to(local):
                yield
        finally:
            with open(local, "rb") as f:
                storage.write_bytes(storage.join(exp_dir, RAY_LOG), f.read())
