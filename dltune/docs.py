"""Write docs/configuration.md from the config dataclasses: ``python -m dltune.docs``."""
from __future__ import annotations

import sys
from pathlib import Path

from dltune import schema
from dltune.config import Config

HEADER = """# Configuration reference

Generated from `dltune/config.py` by `python -m dltune.docs`; a test keeps it complete.

A config is a YAML file with the sections below; every key is optional and
falls back to the default shown. Override any key on the command line with
`section.key=value` (lists as `a,b,c` or `[a, b]`). Unknown keys and values
of the wrong type are refused before anything runs, naming the key and the
closest valid name.

| key | type | default | meaning |
|---|---|---|---|
"""


def _registered() -> dict[str, str]:
    """Keys whose valid names come from a registry, not from the config's types."""
    from dltune.hpo import algorithms

    return {
        "tune.searcher": ", ".join(["auto", *algorithms.SEARCHERS]),
        "tune.scheduler": ", ".join(["auto", *algorithms.SCHEDULERS]),
        "tune.sampler": ", ".join(algorithms.SAMPLERS),
    }


def reference() -> str:
    names = _registered()
    rows = []
    for key, tp, default, help_text in schema.describe(Config):
        if key in names:
            help_text += f" (names: {names[key]})"
        rows.append(f"| `{key}` | {tp.replace('|', '&#124;')} | `{default}` | {help_text} |")
    return HEADER + "\n".join(rows) + "\n"


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/configuration.md")
    out.write_text(reference(), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
