"""Real multi-node Ray clusters on one machine for the cluster tests.

Each node is a separate `ray start` in its own network namespace with its own
address from 198.18.0.0/15 (reserved for benchmarking, so test traffic can
never look like it targets a real network) and its own temp dir. The head's
namespace holds a bridge that every worker namespace is wired to with a veth
pair; nothing is routed to the machine's own network. The filesystem is
shared, so a local directory stands in for NFS.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
SUBNET = "198.18.0"
GCS_PORT = 6379


def namespaces_available() -> str | None:
    """None when network namespaces can be made here, else why not."""
    if shutil.which("ip") is None:
        return "iproute2 ('ip') is not installed"
    probe = f"dltune-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create network namespaces: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Node:
    namespace: str
    address: str
    temp_dir: str


@dataclass
class NamespaceCluster:
    """A Ray head plus worker nodes, each in its own network namespace."""

    token: str = field(default_factory=lambda: secrets.token_hex(16))
    prefix: str = field(default_factory=lambda: f"dlt{os.getpid() % 100000}")
    nodes: list[Node] = field(default_factory=list)
    workdir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="dlt-nodes-"))

    @property
    def head(self) -> Node:
        return self.nodes[0]

    @property
    def gcs_address(self) -> str:
        return f"{self.head.address}:{GCS_PORT}"

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for anything that talks to the cluster: token auth on, this cluster's address."""
        # GLOO_SOCKET_IFNAME: as on any multi-NIC host, DDP must be told which interface reaches the other nodes.
        env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token, RAY_ADDRESS=self.gcs_address,
                   OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0", GLOO_SOCKET_IFNAME="eth0")
        env.update(extra)
        return env

    def _new_namespace(self, index: int) -> tuple[str, str]:
        name, address = f"{self.prefix}-n{index}", f"{SUBNET}.{index + 1}"
        _ip("netns", "add", name)
        _ip("-n", name, "link", "set", "lo", "up")
        if index == 0:  # the head's bridge is its eth0: one interface name on every node, for GLOO_SOCKET_IFNAME
            _ip("-n", name, "link", "add", "eth0", "type", "bridge")
            _ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", name, "link", "set", "eth0", "up")
        else:
            head, port = self.head.namespace, f"p{index}"
            _ip("-n", head, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", name)
            _ip("-n", head, "link", "set", port, "master", "eth0")
            _ip("-n", head, "link", "set", port, "up")
            _ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", name, "link", "set", "eth0", "up")
        return name, address

    def exec_args(self, node: Node, *args: str) -> list[str]:
        return ["ip", "netns", "exec", node.namespace, *args]

    def start_node(self, cpus: float, resources: dict[str, float] | None = None) -> Node:
        index = len(self.nodes)
        namespace, address = self._new_namespace(index)
        node = Node(namespace, address, os.path.join(self.workdir, f"n{index}"))
        args = [RAY, "start", f"--node-ip-address={address}", f"--num-cpus={cpus:g}", f"--temp-dir={node.temp_dir}", "--disable-usage-stats"]
        if index == 0:
            args += ["--head", f"--port={GCS_PORT}", f"--dashboard-host={address}", "--include-dashboard=true"]
        else:
            args += [f"--address={self.gcs_address}"]
        if resources:
            args.append(f"--resources={json.dumps(resources)}")
        self.nodes.append(node)
        started = subprocess.run(self.exec_args(node, *args), env=self.env(), capture_output=True, text=True, timeout=180)
        if started.returncode != 0:
            raise RuntimeError(f"ray start failed on {address}:\n{started.stdout}\n{started.stderr}")
        self.wait_for_nodes(len(self.nodes))
        return node

    def alive_nodes(self) -> int:
        probe = "import ray; ray.init(); print(sum(n['Alive'] for n in ray.nodes()))"
        out = subprocess.run(self.exec_args(self.head, sys.executable, "-c", probe), env=self.env(), capture_output=True, text=True, timeout=120)
        return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else -1

    def wait_for_nodes(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.alive_nodes() != count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster did not reach {count} alive nodes")
            time.sleep(1)

    def pids(self, node: Node) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", node.namespace], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def find_process(self, node: Node, marker: str) -> list[int]:
        """Pids in the node's namespace whose command line contains ``marker``."""
        return [pid for pid in self.pids(node) if marker in _cmdline(pid)]

    def kill_node(self, node: Node) -> None:
        """The whole machine goes: every process of the node dies at once."""
        for pid in self.pids(node):
            kill_pid(pid)

    def shutdown(self) -> None:
        for node in reversed(self.nodes):
            self.kill_node(node)
        for node in reversed(self.nodes):
            subprocess.run(["ip", "netns", "del", node.namespace], capture_output=True)
        shutil.rmtree(self.workdir, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def kill_processes_mentioning(text: str) -> None:
    """SIGKILL every process whose command line contains ``text`` (a node's own temp dir)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and text in _cmdline(int(entry.name)):
            kill_pid(int(entry.name))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_for(predicate: Any, timeout: float, what: str, poll: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(poll)
