"""Python API mirroring the CLI:

    import dltune
    summary = dltune.train("configs/quickstart.yaml", ["train.epochs=5"])
    result = dltune.tune("configs/quickstart_tune.yaml", ["tune.num_samples=4"])
    print(result.best_metric, result.best_config.optim.lr, result.experiment_dir)
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dltune.config import Config, load_config


def _config(config: str | Config | None, overrides: Sequence[str]) -> Config:
    if isinstance(config, Config):
        from dltune import schema
        from dltune.config import apply_overrides, from_dict

        return from_dict(apply_overrides(schema.to_mapping(config), list(overrides)))
    return load_config(config, list(overrides))


def train(config: str | Config | None = None, overrides: Sequence[str] = (), *, resume: bool = False, overwrite: bool = False, verbose: bool = True) -> dict[str, Any]:
    """Train one model in this process (or as a Ray Train job when scaling.launcher is ray); returns the run summary."""
    cfg = _config(config, overrides)
    if cfg.scaling.launcher == "ray":
        from dltune.launch.ray_train import run_ray_train

        return run_ray_train(cfg, resume, overwrite)
    if cfg.scaling.launcher == "torchrun":
        raise ValueError("the torchrun launcher starts new processes: use `dltune train --launcher torchrun` or scripts/dist_train.sh")
    from dltune.launch.local import run_local

    return run_local(cfg, resume=resume, overwrite=overwrite, verbose=verbose)


def tune(config: str | Config | None = None, overrides: Sequence[str] = (), *, resume: bool = False, overwrite: bool = False, verbose: bool = True) -> Any:
    """Run the search in the config's tune section; returns a dltune.hpo.tuner.TuneResult."""
    from dltune.hpo.tuner import run_search

    return run_search(_config(config, overrides), resume=resume, overwrite=overwrite, verbose=verbose)
