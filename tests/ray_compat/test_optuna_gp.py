"""GPSampler with a constant liar: concurrent trials are asked apart, one at a time nothing changes."""
from __future__ import annotations

import warnings

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution

from dltune.ray_compat.optuna_gp import ConstantLiarGPSampler

SPACE = {"x": FloatDistribution(0, 1), "y": FloatDistribution(1e-3, 1, log=True)}


def _loss(params: dict[str, float]) -> float:
    return (params["x"] - 0.3) ** 2 + (np.log10(params["y"]) + 1) ** 2


def _study(sampler: optuna.samplers.BaseSampler, told: int, diverged: int = -1) -> optuna.Study:
    """``told`` trials told, the ``diverged``-th one with an infinite loss."""
    study = optuna.create_study(sampler=sampler)
    for i in range(told):
        trial = study.ask(SPACE)
        study.tell(trial, float("inf") if i == diverged else _loss(trial.params))
    return study


def _sampler(cls: type, **kwargs: object) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return cls(n_startup_trials=3, **kwargs)


def _gaps(trials: list) -> list[float]:
    points = np.array([[t.params["x"], np.log10(t.params["y"])] for t in trials])
    return [float(np.linalg.norm(points[i] - points[j])) for i in range(len(points)) for j in range(i)]


@pytest.mark.parametrize(("seed", "diverged"), [(0, -1), (1, 4)], ids=["finite", "a-diverged-trial"])
def test_trials_asked_while_others_run_are_asked_apart(seed: int, diverged: int) -> None:
    study = _study(_sampler(ConstantLiarGPSampler, seed=seed), told=6, diverged=diverged)
    assert min(_gaps([study.ask(SPACE) for _ in range(4)])) > 0.05
    # Optuna's own asks the same point again while the first one runs
    plain = _study(_sampler(ConstantLiarGPSampler, seed=seed, constant_liar=False), told=6, diverged=diverged)
    assert max(_gaps([plain.ask(SPACE) for _ in range(4)])) < 1e-3


def test_one_trial_at_a_time_is_asked_as_optunas_own_gp_asks_it() -> None:
    ours, optunas = _study(_sampler(ConstantLiarGPSampler, seed=1), told=8), _study(_sampler(optuna.samplers.GPSampler, seed=1), told=8)
    assert [t.params for t in ours.trials] == [t.params for t in optunas.trials]


def test_a_running_trial_asked_under_another_space_is_not_modelled() -> None:
    study = _study(_sampler(ConstantLiarGPSampler, seed=0), told=6)
    study.enqueue_trial({"x": 5.0})
    study.ask({**SPACE, "x": FloatDistribution(0, 10)})  # running, with x outside SPACE's x
    assert 0 <= study.ask(SPACE).params["x"] <= 1  # asked, where the lie would have raised
