"""A search's report: ``report.html`` (one self-contained file that opens offline) and the same
figures as PNG files under ``report/``, written into the experiment dir."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from dltune import storage
from dltune.errors import UserError, describe
from dltune.report.experiment import load


def drawn(write: Callable[[], object], what: str = "report.html") -> bool:
    """Run a writer of ``what`` at the end of a search or job. One that fails is said in one line
    and leaves the outputs, already written, as they are."""
    try:
        write()
    except Exception as exc:  # noqa: BLE001 - the results stand without their picture
        print(f"dltune: warning: {what} was not written: {storage.redact(describe(exc))}", file=sys.stderr)
        return False
    return True


def write_report(path: str, summary: dict[str, Any] | None = None, ends: dict[str, str] | None = None, staging: str | None = None) -> str:
    """Read the experiment at ``path`` and write its report there; returns report.html's path.
    While the search runs (``summary``, ``ends`` and ``staging`` as ``load`` takes them), the page
    alone: the PNG files are drawn once, at the end."""
    from dltune.report.render import build

    running = summary is not None
    page, pngs = build(load(path, summary, ends, staging), pngs=not running)
    figures = storage.join(path, "report")
    for stale in (set(storage.list_names(figures)) - set(pngs)) if not running and storage.isdir(figures) else ():
        storage.delete(storage.join(figures, stale))  # a figure the search no longer has
    for name, data in pngs.items():
        storage.write_bytes(storage.join(figures, name), data)
    out = storage.join(path, "report.html")
    storage.write_text(out, page)
    return out


def write_comparison(paths: list[str], out: str) -> str:
    """One page comparing the searches at ``paths`` (same metric and mode) on best-so-far; ``out``
    is the HTML file, with its PNG beside it."""
    from dltune.report.render import build_comparison

    exps = [load(p) for p in paths]
    kinds = {(e.metric, e.mode) for e in exps}
    if len(kinds) > 1:
        raise UserError("dltune report: the searches do not share a metric and mode: " + ", ".join(f"{e.name}: {e.metric} ({e.mode})" for e in exps))
    page, png = build_comparison(exps)
    storage.write_text(out, page)
    base, name = out.rsplit("/", 1) if "/" in out else ("", out)
    storage.write_bytes((f"{base}/" if base else "") + os.path.splitext(name)[0] + ".png", png)
    return out
