"""The search-space grammar of ``tune.space`` and its translation to Ray Tune.

    optim.lr:           {loguniform: [1.0e-4, 1.0e-1]}
    model.dropout:      {uniform: [0.0, 0.5]}
    train.batch_size:   {choice: [32, 64, 128]}
    model.width:        {quniform: [8, 64, 8]}
    train.epochs:       {randint: [2, 6]}        # inclusive
    optim.name:         {grid: [sgd, adamw]}
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dltune import schema
from dltune.errors import ConfigError

KINDS = ("uniform", "loguniform", "quniform", "randint", "choice", "grid")


@dataclass(frozen=True)
class Param:
    key: str  # dotted config key
    kind: str
    args: tuple[Any, ...]

    @property
    def continuous(self) -> bool:
        return self.kind in ("uniform", "loguniform")

    @property
    def numeric_range(self) -> tuple[float, float] | None:
        if self.kind in ("uniform", "loguniform", "quniform", "randint"):
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
    if kind == "loguniform" and nums[0] <= 0:
        raise ConfigError(f"{where}.loguniform: bounds must be > 0, got {nums[0]}")
    if kind == "randint" and not all(float(n).is_integer() for n in nums):
        raise ConfigError(f"{where}.randint: bounds must be integers, got {args!r}")
    if kind == "quniform" and nums[2] <= 0:
        raise ConfigError(f"{where}.quniform: step must be > 0, got {nums[2]}")
    return Param(key, kind, nums)


def parse_space(space: dict[str, Any], where: str = "tune.space") -> list[Param]:
    """Check every key names a config key and every value follows the grammar."""
    from dltune.config import Config

    params = []
    for key, spec in space.items():
        if key.startswith("tune.") or key == "tune":
            raise ConfigError(f"{where}.{key}: the tune section itself cannot be searched")
        try:
            schema.set_dotted(Config, {}, key, None)
        except ConfigError as exc:  # name the full path: tune.space.optim.lrr: unknown key ...
            raise ConfigError(f"{where}.{exc}") from exc
        params.append(parse_param(key, spec, f"{where}.{key}"))
    return params


def to_tune(param: Param) -> Any:
    """The Ray Tune sampler for one parameter."""
    from ray import tune

    a = param.args
    if param.kind == "uniform":
        return tune.uniform(a[0], a[1])
    if param.kind == "loguniform":
        return tune.loguniform(a[0], a[1])
    if param.kind == "quniform":
        return tune.quniform(a[0], a[1], a[2])
    if param.kind == "randint":
        return tune.randint(int(a[0]), int(a[1]) + 1)  # our bounds are inclusive, Ray's upper is not
    if param.kind == "choice":
        return tune.choice(list(a))
    return tune.grid_search(list(a))


def param_space(params: list[Param]) -> dict[str, Any]:
    return {p.key: to_tune(p) for p in params}


def grid_size(params: list[Param]) -> int:
    return math.prod(len(p.args) for p in params if p.kind == "grid")
