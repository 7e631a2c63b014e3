"""One TensorBoard run's event file, written in the caller's thread.

The search monitor keeps a run per trial. torch's SummaryWriter starts a writer thread
per run and builds each scalar through numpy; for many short trials that cost the
driver as much as Ray Tune's own per-result work. This writes the same records:
one event per step holding all of its scalars, flushed as it is written.
"""
from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Iterable, Mapping

from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.record_writer import RecordWriter

_opened = itertools.count()  # two logs of one process in one second still get names that sort in order


class EventFile:
    def __init__(self, run_dir: str, purge_step: int | None = None) -> None:
        """A new event file in ``run_dir``. ``purge_step``: TensorBoard hides what earlier files
        of the run logged from this step on (a trial a new driver goes on with)."""
        os.makedirs(run_dir, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_opened):06d}"
        self._records = RecordWriter(open(os.path.join(run_dir, name), "wb"))
        try:
            self._write(Event(wall_time=time.time(), file_version="brain.Event:2"))
            if purge_step is not None:
                self._write(Event(wall_time=time.time(), step=purge_step, session_log=SessionLog(status=SessionLog.START)))
            self._records.flush()
        except BaseException:
            self._records.close()
            raise

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=value) for tag, value in values.items()])
        self._write(Event(wall_time=time.time(), step=step, summary=summary))
        self._records.flush()  # a write call, no thread to wait for: the run is live in TensorBoard

    def summaries(self, summaries: Iterable[Summary], step: int = 0) -> None:
        for summary in summaries:
            self._write(Event(wall_time=time.time(), step=step, summary=summary))
        self._records.flush()

    def close(self) -> None:
        self._records.close()

    def _write(self, event: Event) -> None:
        self._records.write(event.SerializeToString())
