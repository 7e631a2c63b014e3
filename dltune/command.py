"""How every dltune command ends (the CLI's and each torchrun rank's): trailing arguments
checked as overrides, errors turned into one redacted line and an exit code
(0 success, 1 failure while running, 2 bad input, 130 interrupted)."""
from __future__ import annotations

import sys
import traceback
from collections.abc import Callable

from dltune import storage
from dltune.errors import ChildFailed, UserError, describe


def split_overrides(items: list[str]) -> list[str]:
    """Trailing arguments must all be key=value overrides."""
    for item in items:
        if "=" not in item or item.startswith("-"):
            raise UserError(f"unexpected argument '{item}': overrides look like section.key=value")
    return items


def run_guarded(body: Callable[[], int], debug: bool) -> int:
    """Run ``body``; turn errors into one redacted line and an exit code (2 input, 1 failure)."""
    try:
        return body()
    except UserError as exc:
        if debug:
            traceback.print_exc()
        print(f"dltune: error: {storage.redact(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dltune: interrupted", file=sys.stderr)
        return 130
    except ChildFailed as exc:
        return exc.returncode
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if debug:
            traceback.print_exc()
        print(f"dltune: failed: {storage.redact(describe(exc))} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1
