from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from torch.utils.tensorboard.summary import hparams

from dltune.hpo.event_file import EventFile


def _reload(run: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run))
    acc.Reload()
    return acc


def test_a_run_is_readable_while_open_and_keeps_its_hparams_after_close(tmp_path: Path) -> None:
    run = EventFile(str(tmp_path / "t1"))
    run.scalars(1, {"val_loss": 0.5, "val_acc": 0.75})
    live = _reload(tmp_path / "t1")  # nothing waits in a writer thread
    assert [(e.step, e.value) for e in live.Scalars("val_acc")] == [(1, 0.75)]
    run.scalars(2, {"val_loss": 0.25, "val_acc": 0.875})
    run.summaries(hparams({"optim.lr": 0.01, "model": "mlp"}, {"hparam/val_acc": 0.875}))
    run.scalars(0, {"hparam/val_acc": 0.875})
    run.close()
    acc = _reload(tmp_path / "t1")
    assert [(e.step, e.value) for e in acc.Scalars("val_loss")] == [(1, 0.5), (2, 0.25)]
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["optim.lr"].number_value == 0.01 and start.hparams["model"].string_value == "mlp"


def test_a_later_file_with_a_purge_step_hides_what_an_earlier_one_logged_from_that_step(tmp_path: Path) -> None:
    first = EventFile(str(tmp_path / "t1"))
    for step in (1, 2, 3):
        first.scalars(step, {"val_acc": step / 10})
    second = EventFile(str(tmp_path / "t1"), purge_step=2)  # same second, same process: still sorts after the first
    for step in (2, 3):
        second.scalars(step, {"val_acc": 0.5 + step / 10})
    first.close()
    second.close()
    acc = _reload(tmp_path / "t1")
    assert [(e.step, round(e.value, 3)) for e in acc.Scalars("val_acc")] == [(1, 0.1), (2, 0.7), (3, 0.8)]
