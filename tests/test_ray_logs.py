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


def test_a_train_workers_console_loses_ray_trains_error_lines_and_its_files_keep_them(tmp_path: Path) -> None:
    import io

    logger = logging.getLogger("ray.train")
    console, file = logging.StreamHandler(io.StringIO()), logging.FileHandler(tmp_path / "train.log")
    logger.addHandler(console)
    logger.addHandler(file)
    try:
        ray_logs.train_errors_off_the_console()
        ray_logs.train_errors_off_the_console()  # once is enough: a second call adds nothing
        logger.warning("a warning")
        logger.error("Error in training function: Traceback ...")
    finally:
        for handler in (console, file):
            logger.removeHandler(handler)
            handler.close()
    assert console.stream.getvalue() == "a warning\n" and len(console.filters) == 1
    assert (tmp_path / "train.log").read_text() == "a warning\nError in training function: Traceback ...\n"
