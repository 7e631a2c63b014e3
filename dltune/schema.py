"""Typed config sections: build dataclasses from YAML mappings, validated once.

Each config section is a dataclass whose fields carry a type hint and, in
their metadata, a one-line ``help`` and optional bounds (``min``, ``gt``,
``max``). ``from_mapping`` checks every key and value against them and raises
``ConfigError`` naming the dotted key path (with the closest valid name for a
typo), so code downstream can trust the values.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin
from typing import get_type_hints as _get_type_hints

import yaml

from dltune.errors import ConfigError

# Resolving a dataclass's string annotations compiles each one; a search builds a config per trial.
get_type_hints = functools.cache(_get_type_hints)


def option(default: Any = dataclasses.MISSING, help: str = "", **bounds: Any) -> Any:
    """A dataclass field with a help line and optional bounds (min, gt, max)."""
    meta = {"help": help, **bounds}
    if isinstance(default, (list, dict)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def section(cls: type, help: str = "") -> Any:
    """A nested config section, built from its own defaults when absent."""
    return dataclasses.field(default_factory=cls, metadata={"help": help})


def _key(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def closest(name: str, valid: typing.Iterable[str]) -> str:
    """' (did you mean X?)' for a near miss, else a list of the valid names."""
    valid = list(valid)
    match = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    if match:
        return f" (did you mean '{match[0]}'?)"
    return f" (valid: {', '.join(valid)})"


def from_mapping(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, refusing unknown keys and bad values."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping of keys, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise ConfigError(f"{_key(path, str(key))}: unknown key{closest(str(key), fields)}")
    values = {}
    for name, f in fields.items():
        if name in data:
            values[name] = coerce(data[name], hints[name], _key(path, name), f.metadata)
        elif dataclasses.is_dataclass(hints[name]):
            values[name] = from_mapping(hints[name], {}, _key(path, name))
    obj = cls(**values)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate()
    return obj


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if tp is type(None):
        return "null"
    if get_origin(tp) is list:
        return f"list of {_type_name(get_args(tp)[0])}"
    if get_origin(tp) is dict:
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, key: str, meta: typing.Mapping[str, Any] | None = None) -> Any:
    """Check ``value`` against type ``tp`` (converting strings from the command line)."""
    out = _coerce(value, tp, key)
    _check_bounds(out, key, meta or {})
    return out


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, key)
    if origin in (Union, types.UnionType):
        members = get_args(tp)
        if value is None and type(None) in members:
            return None
        for member in members:
            if member is type(None):
                continue
            try:
                return _coerce(value, member, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        choices = get_args(tp)
        if value in choices:
            return value
        text = str(value).lower() if isinstance(value, (str, bool)) else value
        if text in choices:
            return text
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}{near(value, choices)}")
    if origin is list:
        (item,) = get_args(tp)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise TypeError(f"unsupported config type {tp!r} at {key}")


def near(value: Any, choices: tuple) -> str:
    match = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _check_bounds(value: Any, key: str, meta: typing.Mapping[str, Any]) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if "min" in meta and value < meta["min"]:
        raise ConfigError(f"{key}: must be >= {meta['min']}, got {value}")
    if "gt" in meta and value <= meta["gt"]:
        raise ConfigError(f"{key}: must be > {meta['gt']}, got {value}")
    if "max" in meta and value > meta["max"]:
        raise ConfigError(f"{key}: must be <= {meta['max']}, got {value}")


def to_mapping(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def parse_override(text: str) -> tuple[str, Any]:
    """'optim.lr=0.01' -> ('optim.lr', 0.01), values parsed as YAML scalars."""
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected key=value, e.g. optim.lr=0.01")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{text}': empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def type_at(cls: type, dotted: str) -> Any:
    """The type of ``dotted`` in dataclass ``cls`` (Any inside free-form mappings); ConfigError for an unknown key."""
    parts = dotted.split(".")
    tp: Any = cls
    for i, part in enumerate(parts):
        here = ".".join(parts[: i + 1])
        if dataclasses.is_dataclass(tp):
            names = [f.name for f in dataclasses.fields(tp)]
            if part not in names:
                raise ConfigError(f"{here}: unknown key{closest(part, names)}")
            tp = get_type_hints(tp)[part]
        elif get_origin(tp) is dict or tp is Any:
            tp = Any
        else:
            raise ConfigError(f"{here}: '{'.'.join(parts[:i])}' is not a section")
    return tp


def set_dotted(cls: type, mapping: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``dotted`` in ``mapping``, checking each step is a key of ``cls`` (free-form dicts excepted)."""
    type_at(cls, dotted)
    *parents, last = dotted.split(".")
    node = mapping
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[last] = value


def describe(cls: type, path: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, help) for every key of ``cls``, depth first: the config reference."""
    rows = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        key = _key(path, f.name)
        if dataclasses.is_dataclass(tp):
            rows.extend(describe(tp, key))
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "(required)"
        rows.append((key, _type_name(tp), yaml.safe_dump(default, default_flow_style=True).strip().removesuffix("...").strip(), f.metadata.get("help", "")))
    return rows
