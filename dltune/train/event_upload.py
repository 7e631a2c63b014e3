"""A local TensorBoard directory mirrored to remote storage, sending each byte once.

Object stores cannot append, so the bytes an event file gained since the last upload go up as
an object of their own, named ``<file>.<offset>`` (offset zero-padded, so names sort in write
order). An event file is a sequence of self-contained records and the writer is flushed before
each upload, so every piece ends on a record boundary; TensorBoard reads every file in a run's
directory whose name holds "tfevents", in name order, and so reads the pieces as one file.
"""
from __future__ import annotations

import os

from dltune import storage


class EventUpload:
    """Uploads what was written under ``local_dir`` since the last call, to ``remote_dir``."""

    def __init__(self, local_dir: str, remote_dir: str) -> None:
        self.local_dir = local_dir
        self.remote_dir = remote_dir
        self.sent: dict[str, int] = {}  # relative path -> bytes of it already remote

    def mark_uploaded(self) -> None:
        """Everything already under ``local_dir`` is remote too (downloaded for a resume)."""
        self.sent = {rel: os.path.getsize(path) for rel, path in storage.local_files(self.local_dir)}

    def __call__(self) -> int:
        """Send the new bytes; returns how many were sent."""
        total = 0
        for rel, path in storage.local_files(self.local_dir):
            done = self.sent.get(rel, 0)
            if os.path.getsize(path) == done:
                continue
            with open(path, "rb") as f:
                f.seek(done)
                new = f.read()
            storage.write_bytes(storage.join(self.remote_dir, rel if done == 0 else f"{rel}.{done:012d}"), new)
            self.sent[rel] = done + len(new)
            total += len(new)
        return total
