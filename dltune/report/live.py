"""``python -m dltune.report.live``: one rewrite of a running search's report.html, in a process of
its own, so that the search's driver never waits on it (see dltune.hpo.live_report).

Its orders come as JSON on stdin, not in argv or a file, because the experiment dir's URI may
carry credentials: {"dir": the experiment dir, "staging": the driver's local copy of it (Ray
writes trial results there first), "summary": the plan and the counts so far, "ends": Ray trial
id -> stop reason, "journal": [the local study.journal, where to copy it] or null}.
"""
from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from dltune import storage
from dltune.errors import describe
from dltune.report import write_report


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so that a write under way removes its temp file
    orders = json.load(sys.stdin)
    try:
        if orders.get("journal"):
            local, remote = orders["journal"]
            if Path(local).exists():
                data = Path(local).read_bytes()
                storage.write_bytes(remote, data[:data.rfind(b"\n") + 1])  # whole lines: the driver appends as this reads
        write_report(orders["dir"], orders["summary"], orders["ends"], orders.get("staging"))
    except Exception as exc:  # noqa: BLE001 - one line for the driver's console, which goes on
        print(f"dltune: warning: report.html is no longer rewritten while the search runs: {storage.redact(describe(exc))}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
