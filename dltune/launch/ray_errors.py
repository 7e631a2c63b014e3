"""A failure inside a Ray worker, reported by its real cause.

Ray wraps a worker's exception in RayTaskError, Ray Train in WorkerGroupError
or ControllerError, Ray Tune in its trial error; the driver digs out what the
training function or dltune's input checks raised.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dltune.errors import TrainFnError, UserError, first_line


def root_cause(exc: BaseException | None) -> BaseException | None:
    """The UserError or TrainFnError inside Ray's wrappers of ``exc``, or None."""
    todo: list[Any] = [exc]
    seen: set[int] = set()
    while todo:
        err = todo.pop(0)
        if not isinstance(err, BaseException) or id(err) in seen:
            continue
        seen.add(id(err))
        inner = getattr(err, "cause", None)
        if isinstance(inner, BaseException):  # RayTaskError: the worker's own exception object
            todo.insert(0, inner)
            continue
        if isinstance(err, (UserError, TrainFnError)):
            return err
        failures = getattr(err, "worker_failures", None) or {}
        todo += [*failures.values(), getattr(err, "controller_failure", None), err.__cause__, err.__context__]
    return None


def describe_failure(exc: BaseException) -> str:
    cause = root_cause(exc)
    if cause is not None:
        return str(cause)
    return f"{type(exc).__name__}: {first_line(str(exc))}"


def raise_root_cause(exc: BaseException) -> None:
    """Re-raise the real cause of a Ray failure (or ``exc`` itself when none is found), chained
    to Ray's exception: its text holds the worker's traceback (what --debug shows)."""
    cause = root_cause(exc)
    if cause is None or cause is exc:
        raise exc
    # Found through exc's own chain, cause already sits below it: keep its own cause, no loop.
    raise cause from (cause.__cause__ if _in_chain(exc, cause) else exc)


def _in_chain(exc: BaseException, cause: BaseException) -> bool:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc.__cause__, exc.__context__]
    while todo:
        err = todo.pop()
        if err is None or id(err) in seen:
            continue
        if err is cause:
            return True
        seen.add(id(err))
        todo += [err.__cause__, err.__context__]
    return False


def in_worker(body: Callable[[], Any]) -> Any:
    """Run a worker's training; an exception other than bad input travels back as TrainFnError,
    so the driver can name its type, message and file:line whatever Ray wraps it in."""
    try:
        return body()
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised in a form that survives Ray's wrappers
        raise TrainFnError.of(exc) from None
