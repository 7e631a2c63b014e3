"""Ray's and its libraries' log lines go to the experiment's ray.log for the length of a run."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dltune import ray_logs


def test_ray_and_optuna_lines_go_to_the_file_and_the_handlers_come_back(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    import optuna

    loggers = [logging.getLogger(name) for name in ray_logs.LOGGERS]
    with ray_logs.routed_to(str(tmp_path / "first.log")):
        pass  # Ray and Optuna add their terminal handlers on first import and use: let that happen
    before = [(list(lg.handlers), lg.propagate) for lg in loggers]
    with ray_logs.routed_to(str(tmp_path / "ray.log")):
        optuna.create_study()
        logging.getLogger("ray.tune").warning("a line of Ray Tune's")
    out, err = capfd.readouterr()
    assert "A new study created" not in out + err and "a line of Ray Tune's" not in out + err
    text = (tmp_path / "ray.log").read_text()
    assert "A new study created in memory" in text and "a line of Ray Tune's" in text
    assert [(list(lg.handlers), lg.propagate) for lg in loggers] == before


def test_a_train_workers_console_keeps_warnings_and_rank_0s_file_gets_the_rest(tmp_path: Path) -> None:
    import io

    train, root = logging.getLogger("ray.train"), logging.getLogger()
    saved = (list(train.handlers), train.propagate, list(root.handlers), root.level)
    console = logging.StreamHandler(io.StringIO())
    train.handlers, train.propagate, root.handlers = [console], False, [console]  # as Ray Train sets up a worker: one handler for both
    root.setLevel(logging.INFO)
    try:
        ray_logs.train_worker_lines(str(tmp_path / "ray.log"))
        ray_logs.train_worker_lines(str(tmp_path / "ray.log"))  # once is enough: a second call adds nothing
        logging.getLogger("/site-packages/ray/train/v2/_internal/execution/context.py").info("Reporting training result 1")
        logging.getLogger("user").warning("the user's warning")
        logging.getLogger("user").error("the user's error")
        train.warning("a warning of Ray Train's")
        train.error("Error in training function: Traceback ...")
    finally:
        file = next(h for h in root.handlers if isinstance(h, logging.FileHandler))
        file.close()
        train.handlers, train.propagate, root.handlers = saved[0], saved[1], saved[2]
        root.setLevel(saved[3])
    assert console.stream.getvalue() == "the user's warning\nthe user's error\na warning of Ray Train's\n" and len(console.filters) == 1
    logged = (tmp_path / "ray.log").read_text()
    for line in ("Reporting training result 1", "the user's warning", "the user's error", "a warning of Ray Train's", "Error in training function: Traceback"):
        assert logged.count(line) == 1, line
