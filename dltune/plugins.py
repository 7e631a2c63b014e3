"""'package.module:name' resolution for everything a user plugs in.

train.fn, train.loss, data.target, model.target, tune.searcher and
tune.scheduler all name user code this way. Each failure is a ConfigError
naming the key, raised before anything trains or Ray starts.
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from dltune.errors import ConfigError


def is_import_path(text: str) -> bool:
    module, sep, attr = text.partition(":")
    return bool(sep and module and attr)


def check_import_path(key: str, text: str, what: str = "function") -> None:
    if text and not is_import_path(text):
        raise ConfigError(f"{key}: expected 'package.module:{what}', got {text!r}")


def resolve(key: str, path: str) -> Any:
    """The object ``path`` names ('package.module:attr', attr may be dotted)."""
    check_import_path(key, path)
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(f"{key}: cannot import module '{module_name}' (not found on the Python path; install the package or run from its directory)") from exc
        raise ConfigError(f"{key}: importing '{module_name}' failed: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - the user's module raised while being imported
        raise ConfigError(f"{key}: importing '{module_name}' failed: {type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{key}: module '{module_name}' has no callable '{attr}'")
        obj = getattr(obj, part)
    return obj


# The user functions a config names: how many positional arguments each is called with, and how.
FUNCTIONS = {
    "train.fn": (1, "a train.fn takes one argument, the run context"),
    "train.loss": (2, "a train.loss is called as loss(output, target)"),
    "model.target": (2, "a model.target is called as function(model_cfg, data_spec)"),
    "data.target": (1, "a data.target takes one argument, the config"),
}


def resolve_function(key: str, path: str) -> Callable[..., Any]:
    """The user function config key ``key`` names, checked to take the arguments it is called with."""
    arity, what = FUNCTIONS[key]
    return resolve_callable(key, path, arity, what)


def resolve_callable(key: str, path: str, arity: int | None = None, what: str = "") -> Callable[..., Any]:
    fn = resolve(key, path)
    if not callable(fn):
        raise ConfigError(f"{key}: '{path}' is a {type(fn).__name__}, not callable")
    if arity is not None:
        check_arity(key, fn, arity, what)
    return fn


def check_arity(key: str, fn: Callable[..., Any], arity: int, what: str) -> None:
    """Refuse a function that cannot be called with ``arity`` positional arguments."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins without a signature: let the call decide
    try:
        signature.bind(*range(arity))
    except TypeError:
        name = getattr(fn, "__qualname__", repr(fn))
        raise ConfigError(f"{key}: {name}{signature} cannot be called with {arity} argument(s); {what}") from None


def import_path_of(obj: Any) -> str:
    """'module:qualname' of a function or class (what a config records for a Python object);
    a partial or a callable instance is named by its class."""
    named = obj if hasattr(obj, "__qualname__") else type(obj)
    return f"{getattr(named, '__module__', '__main__')}:{named.__qualname__}"
