"""Every private name dltune.ray_compat relies on, checked against the installed Ray, Optuna and
FLAML in one call (tests/ray_compat): each module lists what it lacks, this collects them."""
from __future__ import annotations

from dltune.ray_compat import flaml_automl, missing_here, optuna_gp, optuna_search, scheduler_state, schedulers, searcher_history


def missing() -> list[str]:
    """What the installed libraries lack or have changed of those names, each as 'where: name'."""
    return (missing_here() + schedulers.missing() + optuna_search.missing() + optuna_gp.missing() + scheduler_state.missing()
            + searcher_history.missing() + flaml_automl.missing())
