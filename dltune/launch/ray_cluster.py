"""The Ray cluster a run uses: joining RAY_ADDRESS or starting a local Ray, and what one
training worker reserves on it."""
from __future__ import annotations

import os
import socket
from typing import Any

from dltune import ray_compat
from dltune.config import Config, reserved_cpus

HEAD_AVOIDING_RESOURCE = "worker_node"


def init_ray(num_cpus: int, num_gpus: int | None, **init_options: Any) -> bool:
    """Connect to RAY_ADDRESS, or start a local Ray with these logical CPUs and GPUs
    (None: Ray counts the GPUs); nothing when this process is already connected.
    True when this call connected (the caller then disconnects when done)."""
    import ray

    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    if address:
        connect_ray(address, **init_options)
    else:
        start_local_ray(num_cpus=num_cpus, num_gpus=num_gpus, **init_options)
    return True


# Ray Train's placement-group cleaner finds its cluster through RAY_ADDRESS or, failing that,
# by looking for GCS processes on the machine; with two Ray instances on one machine it finds
# both, gives up, and a killed Train run's workers keep their CPUs for ever (a PBT pause then
# deadlocks the search). So every worker of ours is told the address.


def connect_ray(address: str, **init_options: Any) -> None:
    import ray

    if address.startswith("ray://"):  # Ray Client: the cluster side knows its own address
        ray.init(address=address, **init_options)
        return
    gcs = ray_compat.gcs_address(address)
    ray.init(address=address, runtime_env={"env_vars": ray_compat.worker_environment(gcs)}, **init_options)


def start_local_ray(**init_options: Any) -> None:
    """Start a local Ray on a GCS port chosen here, so its address can go to every worker."""
    import ray
    import ray.util

    ip = ray.util.get_node_ip_address()
    with socket.socket() as probe:
        probe.bind((ip, 0))
        port = probe.getsockname()[1]
    with ray_compat.head_gcs_port(port):
        # address="local": a new Ray, never the last `ray start` cluster Ray would otherwise find on this machine
        ray.init(address="local", runtime_env={"env_vars": ray_compat.local_worker_environment(f"{ip}:{port}")},
                 **{"include_dashboard": True, "dashboard_host": "127.0.0.1", **init_options})


def worker_resources(cfg: Config) -> dict[str, float]:
    res: dict[str, float] = {"CPU": reserved_cpus(cfg.scaling)}
    if cfg.scaling.use_gpu:
        res["GPU"] = cfg.scaling.gpus_per_worker
    if cfg.scaling.avoid_head:
        res[HEAD_AVOIDING_RESOURCE] = 0.001
    return res


def usable_resources(avoid_head: bool) -> dict[str, float]:
    """What trials may use: the whole cluster, or with avoid_head only the nodes that offer 'worker_node'."""
    import ray

    if not avoid_head:
        return {k: float(v) for k, v in ray.cluster_resources().items()}
    total: dict[str, float] = {}
    for node in ray.nodes():
        if node["Alive"] and HEAD_AVOIDING_RESOURCE in node["Resources"]:
            for key, value in node["Resources"].items():
                total[key] = total.get(key, 0.0) + float(value)
    return total
