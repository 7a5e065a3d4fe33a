"""A Ray cluster of several nodes on this machine, for the multi-node test and benchmark.

    LocalCluster(env).start(workers): `ray start --head --block` and `ray start --address
    <head> --block` per worker node, each in a process group of its own with a temp dir of
    its own and free ports, so no other Ray instance on the machine is touched
    kill(node): SIGKILL to every process of that node (its raylet, agents and workers): a
    machine lost
    stop(): the same for every node that is left; never `ray stop`, which stops every Ray
    instance on the machine

Every node gets `num_cpus` CPUs, the environment given (code on PYTHONPATH, the data
paths and Redis of the world served) and Ray Serve's plain HTTP proxy: on one host the
nodes share one network address, and HAProxy's per-node listeners and direct-ingress
ports would collide there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tailwise.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).parent / "ray"  # the `ray` of this environment
STARTED = "Ray runtime started"
ATTEMPTS = 4
ONE_HOST = {
    "RAY_SERVE_ENABLE_HA_PROXY": "0",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "0",
    "PYTHONUNBUFFERED": "1",  # `ray start` prints that it started: read it at once
    # The raylet waits this long for its agents' port files; on a busy machine they take
    # longer to import than the default allows, and the node gives up.
    "RAY_raylet_start_wait_time_s": "120",
    # Loopback only, nodes and driver of one test: no token (a head started by `ray start`
    # would otherwise pick up a token file of the user's that the other processes lack).
    "RAY_AUTH_MODE": "disabled",
}


class ClusterError(RuntimeError):
    """A node did not start; the message carries its output."""


@dataclass
class Node:
    name: str
    manager_port: int
    temp_dir: Path
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to the node's whole process tree (its group and any child that left it)."""
        try:
            tree = [psutil.Process(self.process.pid)]
            tree += tree[0].children(recursive=True)
        except psutil.NoSuchProcess:
            tree = []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        for proc in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        self.process.wait(timeout=30)


def ray_binary() -> str:
    found = RAY if RAY.exists() else shutil.which("ray")
    if found is None:
        raise ClusterError("the `ray` command is not installed next to this Python")
    return str(found)


class LocalCluster:
    """A head and worker nodes on this host; `address` is the head's GCS address."""

    def __init__(self, env: dict[str, str], num_cpus: int = 1, start_timeout: float = 300):
        self.env = {**os.environ, **env, **ONE_HOST}
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), self.env.get("PYTHONPATH", "")) if p
        )
        self.num_cpus, self.start_timeout = num_cpus, start_timeout
        self.root = Path(tempfile.mkdtemp(prefix="twray"))  # short: Ray's socket paths
        self.gcs_port = free_port()
        self.address = f"127.0.0.1:{self.gcs_port}"
        self.nodes: list[Node] = []

    def start(self, workers: int) -> LocalCluster:
        try:
            self.nodes.append(self._launch("head", head=True))
            for i in range(workers):
                self.nodes.append(self._launch(f"worker{i + 1}", head=False))
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, name: str, head: bool) -> Node:
        """Start a node, again when it gives up: `ray start` allows its raylet a fixed 30 s
        to register, which its agents' imports can take on a busy machine."""
        for attempt in range(1, ATTEMPTS + 1):
            if head:  # a new GCS port each time: the failed head may still hold the old one
                self.gcs_port = free_port()
                self.address = f"127.0.0.1:{self.gcs_port}"
            role = [f"--port={self.gcs_port}", "--head"] if head else [f"--address={self.address}"]
            try:
                return self._launch_once(name, self.root / f"{name}-{attempt}", role)
            except ClusterError as exc:
                if attempt == ATTEMPTS:
                    raise
                print(f"{exc}\nstarting it again", file=sys.stderr)
        raise ClusterError("unreachable")

    def _launch_once(self, name: str, temp_dir: Path, role: list[str]) -> Node:
        temp_dir.mkdir()
        manager_port = free_port()
        ports = {
            "--node-manager-port": manager_port,
            "--object-manager-port": free_port(),
            "--dashboard-agent-listen-port": free_port(),
            "--dashboard-agent-grpc-port": free_port(),
            "--runtime-env-agent-port": free_port(),
            "--metrics-export-port": free_port(),
        }
        if "--head" in role:
            ports["--ray-client-server-port"] = free_port()
            role = [*role, "--include-dashboard=false"]
        args = [
            ray_binary(),
            "start",
            *role,
            "--block",
            f"--num-cpus={self.num_cpus}",
            "--disable-usage-stats",
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={temp_dir}",
            *(f"{flag}={port}" for flag, port in ports.items()),
        ]
        process = subprocess.Popen(
            args,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: kill() reaches only this node
        )
        node = Node(name, manager_port, temp_dir, process)
        started = threading.Event()

        def read() -> None:  # keep draining, or a full pipe would block the node
            assert process.stdout is not None
            for line in process.stdout:
                node.output.append(line.rstrip())
                if STARTED in line:
                    started.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        while not started.wait(0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                node.kill()
                tail = "\n".join(node.output[-3:])
                raise ClusterError(f"ray node {name} did not start:\n{tail}")
        return node

    def node_by_id(self, node_id: str) -> Node:
        """Our node whose raylet registered with this Ray node id (ray.nodes() of a
        driver connected to this cluster)."""
        import ray

        for info in ray.nodes():
            if info["NodeID"] == node_id:
                port = int(info["NodeManagerPort"])
                for node in self.nodes:
                    if node.manager_port == port:
                        return node
        raise ClusterError(f"no node of this cluster has Ray node id {node_id}")

    def stop(self) -> None:
        for node in reversed(self.nodes):  # workers first, the head (GCS) last
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)
