"""Python API, and the one dispatch the CLI calls:

    import dltune
    summary = dltune.train("configs/quickstart.yaml", ["train.epochs=5"])
    result = dltune.tune("configs/quickstart_tune.yaml", ["tune.num_samples=4"])
    print(result.best_metric, result.best_config.optim.lr, result.experiment_dir)

    def objective(ctx):                       # any function of the run context
        ctx.report({"loss": (ctx.params["x"] - 2) ** 2})
    dltune.tune(None, ["tune.space={params.x: {uniform: [-5, 5]}}", "tune.metric=loss"], fn=objective)
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dltune.config import Config, load_config
from dltune.errors import ChildFailed, UserError

TrainFn = Callable[[Any], Any]  # a function of the run context (dltune.RunContext)


def _config(config: str | Config | None, overrides: Sequence[str]) -> Config:
    if isinstance(config, Config):
        from dltune import schema
        from dltune.config import apply_overrides, from_dict

        return from_dict(apply_overrides(schema.to_mapping(config), list(overrides)))
    return load_config(config, list(overrides))


def train(config: str | Config | None = None, overrides: Sequence[str] = (), *, resume: bool = False, overwrite: bool = False,
          verbose: bool = True, fn: TrainFn | None = None) -> dict[str, Any]:
    """Train once with the config's launcher (scaling.launcher) and return the run summary.

    ``fn`` is a training function object to use instead of train.fn (local and ray launchers)."""
    from dltune.preflight import check_run

    cfg = _config(config, overrides)
    check_run(cfg, fn)  # a bad train.fn, a GPU this machine lacks or a missing path: refused before anything starts
    if cfg.scaling.launcher == "ray":
        from dltune.launch.ray_train import run_ray_train

        return run_ray_train(cfg, resume, overwrite, verbose, fn)
    if cfg.scaling.launcher == "torchrun":
        if fn is not None or not isinstance(config, str):
            raise UserError("scaling.launcher: torchrun starts new processes from a config file: give train.fn as 'package.module:function' and a config path")
        from dltune.launch.torchrun import run_torchrun
        from dltune.train.session import experiment_dir, read_summary

        code = run_torchrun(cfg, config, list(overrides), resume, overwrite)
        if code != 0:
            raise ChildFailed(code)
        return read_summary(experiment_dir(cfg)) or {}
    from dltune.launch.local import run_local

    return run_local(cfg, resume=resume, overwrite=overwrite, verbose=verbose, fn=fn)


def tune(config: str | Config | None = None, overrides: Sequence[str] = (), *, resume: bool = False, overwrite: bool = False,
         verbose: bool = True, fn: TrainFn | None = None) -> Any:
    """Run the search in the config's tune section over trials of train.fn (or ``fn``);
    returns a dltune.hpo.outputs.TuneResult."""
    from dltune.hpo.search_plan import preflight

    cfg = preflight(_config(config, overrides), fn)  # bad input is refused before Ray is even imported
    from dltune.hpo.tuner import run_search

    return run_search(cfg, resume=resume, overwrite=overwrite, verbose=verbose, fn=fn)
