"""A remote TensorBoard dir gets each event byte once, and TensorBoard reads the pieces as one run."""
from __future__ import annotations

import shutil
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from dltune.train.event_upload import EventUpload


def remote_bytes(remote: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(remote.iterdir())}


def scalars(run: Path) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(run))
    acc.Reload()
    return [(e.step, round(e.value, 6)) for e in acc.Scalars("loss")]


def test_each_epoch_uploads_only_its_new_bytes_and_tensorboard_reads_them_back(tmp_path: Path) -> None:
    local, remote = tmp_path / "local", tmp_path / "remote"
    writer = SummaryWriter(str(local))
    upload = EventUpload(str(local), str(remote))
    before: dict[str, bytes] = {}
    for epoch in range(1, 6):
        writer.add_scalar("loss", 1.0 / epoch, epoch)
        writer.flush()
        sent = upload()
        now = remote_bytes(remote)
        local_size = sum(p.stat().st_size for p in local.iterdir())
        assert sent > 0 and sum(len(b) for b in now.values()) == local_size  # nothing sent twice
        assert {k: now[k] for k in before} == before and len(now) == epoch  # earlier pieces untouched
        before = now
    assert upload() == 0
    writer.close()
    assert scalars(remote) == [(e, round(1.0 / e, 6)) for e in range(1, 6)]


def test_a_resumed_run_sends_only_what_it_writes_after_the_download(tmp_path: Path) -> None:
    first, remote, resumed = tmp_path / "first", tmp_path / "remote", tmp_path / "resumed"
    writer = SummaryWriter(str(first))
    upload = EventUpload(str(first), str(remote))
    for epoch in (1, 2, 3):
        writer.add_scalar("loss", float(epoch), epoch)
        writer.flush()
        upload()
    writer.close()
    shutil.copytree(remote, resumed)  # what the resumed run downloads
    upload = EventUpload(str(resumed), str(remote))
    upload.mark_uploaded()
    assert upload() == 0
    writer = SummaryWriter(str(resumed), purge_step=3)  # resuming from the epoch-2 checkpoint
    writer.add_scalar("loss", 30.0, 3)
    writer.flush()
    assert 0 < upload() < sum(p.stat().st_size for p in resumed.iterdir())
    writer.close()
    assert scalars(remote) == [(1, 1.0), (2, 2.0), (3, 30.0)]
