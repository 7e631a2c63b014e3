"""The search-space grammar of ``tune.space`` (no Ray here; dltune.hpo translates it).

    optim.lr:           {loguniform: [1.0e-4, 1.0e-1]}
    model.dropout:      {uniform: [0.0, 0.5]}
    train.batch_size:   {choice: [32, 64, 128]}
    model.width:        {quniform: [8, 64, 8]}
    train.epochs:       {randint: [2, 6]}        # inclusive
    model.hidden_units: {lograndint: [16, 512]}  # inclusive, log-scaled integers
    optim.name:         {grid: [sgd, adamw]}
    params.layers:      {randint: [1, 4]}        # a train.fn's own value (ctx.params["layers"])
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dltune import schema
from dltune.errors import ConfigError

KINDS = ("uniform", "loguniform", "quniform", "randint", "lograndint", "choice", "grid")
FLOAT_KINDS = ("uniform", "loguniform")
INTEGER_KINDS = ("randint", "lograndint")


@dataclass(frozen=True)
class Param:
    key: str  # dotted config key
    kind: str
    args: tuple[Any, ...]

    @property
    def numeric_range(self) -> tuple[float, float] | None:
        if self.kind in ("uniform", "loguniform", "quniform", "randint", "lograndint"):
            return float(self.args[0]), float(self.args[1])
        return None


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    return value


def parse_param(key: str, spec: Any, where: str) -> Param:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(f"{where}: expected one of {{{', '.join(KINDS)}}}: [...], got {spec!r}")
    kind, args = next(iter(spec.items()))
    if kind not in KINDS:
        raise ConfigError(f"{where}: unknown distribution '{kind}'{schema.closest(str(kind), KINDS)}")
    if not isinstance(args, list) or not args:
        raise ConfigError(f"{where}.{kind}: expected a non-empty list, got {args!r}")
    if kind in ("choice", "grid"):
        return Param(key, kind, tuple(args))
    want = 3 if kind == "quniform" else 2
    if len(args) != want:
        raise ConfigError(f"{where}.{kind}: expected {want} numbers, got {args!r}")
    nums = tuple(_number(a, f"{where}.{kind}") for a in args)
    if nums[0] >= nums[1]:
        raise ConfigError(f"{where}.{kind}: lower bound {nums[0]} must be below upper bound {nums[1]}")
    if kind in ("loguniform", "lograndint") and nums[0] <= 0:
        raise ConfigError(f"{where}.{kind}: bounds must be > 0, got {nums[0]}")
    if kind in INTEGER_KINDS and not all(float(n).is_integer() for n in nums):
        raise ConfigError(f"{where}.{kind}: bounds must be integers, got {args!r}")
    if kind == "quniform" and nums[2] <= 0:
        raise ConfigError(f"{where}.quniform: step must be > 0, got {nums[2]}")
    return Param(key, kind, nums)


def _check_integer_key(param: Param, tp: Any, where: str) -> None:
    """A float sample cannot become an integer setting: refuse it now, not after the search."""
    if tp is not int:
        return
    if param.kind in FLOAT_KINDS or (param.kind == "quniform" and not all(float(a).is_integer() for a in param.args)):
        hint = "lograndint" if param.kind == "loguniform" else "randint"
        raise ConfigError(f"{where}: {param.kind} samples floats but {param.key} is an integer; use {{{hint}: [low, high]}} or quniform with an integer step")


def parse_space(space: dict[str, Any], root: type, where: str = "tune.space") -> list[Param]:
    """Check every key names a key of the config class ``root`` and every value follows the grammar
    (``params.*`` keys are free-form)."""
    out = []
    for key, spec in space.items():
        if key.startswith("tune.") or key == "tune":
            raise ConfigError(f"{where}.{key}: the tune section itself cannot be searched")
        try:
            tp = schema.type_at(root, key)
        except ConfigError as exc:  # name the full path: tune.space.optim.lrr: unknown key ...
            raise ConfigError(f"{where}.{exc}") from exc
        param = parse_param(key, spec, f"{where}.{key}")
        _check_integer_key(param, tp, f"{where}.{key}")
        out.append(param)
    return out


def undefined_params(params: list[Param], defined: dict[str, Any]) -> list[str]:
    """Warnings for searched ``params.*`` keys the config's params section does not define
    (allowed: a train.fn may have its own default)."""
    return [f"warning: tune.space.{p.key}: the config's params section has no '{p.key.split('.')[1]}'; each trial sets it anyway"
            for p in params if p.key.startswith("params.") and p.key.split(".")[1] not in defined]


def grid_size(params: list[Param]) -> int:
    return math.prod(len(p.args) for p in params if p.kind == "grid")
