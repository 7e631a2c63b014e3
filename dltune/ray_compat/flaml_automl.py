"""What dltune's AutoML job needs from FLAML (2.x) beyond its documented API, in one place.

- ``AutoML._use_ray``: ``fit`` keeps the ``use_ray`` settings it was given, callbacks included,
  and the fitted model pickles them; dltune's Ray Tune progress callback holds a queue and a
  thread, so the model would not pickle. FLAML has no setting to drop them after the fit.
- ``flaml.automl.ml.is_min_metric`` and ``sklearn_metric_loss_score``: which metrics FLAML
  minimises and how it scores a validation fold, so that dltune's test score is the number
  FLAML's search optimised (not exported from ``flaml``).

``missing()`` lists what an installed FLAML lacks of these.
"""
from __future__ import annotations

from typing import Any


def forget_ray_settings(automl: Any, used_ray: bool) -> None:
    """Replace the Ray settings a fitted AutoML keeps with whether it used Ray, as FLAML's own flag."""
    automl._use_ray = used_ray


def is_min_metric(metric: str) -> bool:
    """Whether FLAML minimises ``metric`` itself (otherwise it minimises 1 - metric)."""
    from flaml.automl.ml import is_min_metric as minimised

    return bool(minimised(metric))


def metric_loss(metric: str, y_pred: Any, y_true: Any, **kwargs: Any) -> float:
    """FLAML's loss for ``metric`` on one set of predictions (kwargs: ``labels``)."""
    from flaml.automl.ml import sklearn_metric_loss_score

    return float(sklearn_metric_loss_score(metric, y_pred, y_true, **kwargs))


def missing() -> list[str]:
    """What of the above the installed FLAML lacks, each as 'where: name'."""
    import flaml.automl.ml as ml
    from flaml import AutoML

    gone = [f"flaml.automl.ml: {name}" for name in ("is_min_metric", "sklearn_metric_loss_score") if not callable(getattr(ml, name, None))]
    if "_use_ray" not in AutoML.fit.__code__.co_names:
        gone.append("flaml.AutoML: _use_ray")
    return gone
