"""A Redis Cluster of local redis-server processes for tests: 3 masters, 3 replicas.

Each node runs in its own folder under `directory` with `cluster-enabled yes`, the
append-only file fsynced per write (as `tailwise redis` runs a single server) and a short
`cluster-node-timeout`, so a killed master is replaced by its replica within seconds.
`redis-cli --cluster create` assigns the slots and the replicas. `stop` ends every
process it started; the caller removes the folder.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from tailwise.ports import free_port
from tailwise.redis_server import server_args

NODE_TIMEOUT_MS = 1000
MASTERS, REPLICAS_PER_MASTER = 3, 1
BUS_OFFSET = 10_000  # Redis Cluster's node-to-node bus listens on port + 10000


class ClusterError(RuntimeError):
    """The cluster did not reach the state a test needs in time; the message says which."""


def _cluster_port(taken: set[int]) -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port + BUS_OFFSET < 65_536 and port not in taken and port + BUS_OFFSET not in taken:
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + BUS_OFFSET))
            except OSError:
                continue
            return port
    raise ClusterError("no free port pair (port, port + 10000) found in 200 tries")


class LocalCluster:
    """Six redis-server processes forming one cluster; `url` is a node to start from."""

    def __init__(self, directory: Path, binary: str, cli: str) -> None:
        self.directory, self.binary, self.cli = directory, binary, cli
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        ports: set[int] = set()
        for _ in range(MASTERS * (1 + REPLICAS_PER_MASTER)):
            ports.add(_cluster_port(ports | {p + BUS_OFFSET for p in ports}))
        self.ports = sorted(ports)
        try:
            for port in self.ports:
                self._launch(port)
            self._create()
            self.wait_until(self.healthy, 60, "cluster_state:ok with every master replicated")
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=2)

    def _launch(self, port: int) -> None:
        folder = self.directory / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        args = [
            *server_args(folder, port),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(NODE_TIMEOUT_MS),
            "--repl-diskless-sync-delay",
            "0",
            "--logfile",
            str((folder / "redis.log").resolve()),
        ]
        self.processes[port] = subprocess.Popen(
            [self.binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.wait_until(lambda: self._answers(port), 10, f"redis-server on port {port} answers")

    def _answers(self, port: int) -> bool:
        try:
            return bool(self.node(port).ping())
        except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
            return False

    def _create(self) -> None:
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        done = subprocess.run(
            [self.cli, "--cluster", "create", *nodes, "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise ClusterError(f"redis-cli --cluster create failed:\n{done.stdout}\n{done.stderr}")

    def info(self, port: int) -> dict[str, str]:
        text = self.node(port).execute_command("CLUSTER", "INFO")
        text = text.decode() if isinstance(text, bytes) else str(text)
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def masters(self) -> list[int]:
        """Ports of the live nodes that are masters owning slots (each asked about itself)."""
        out = []
        for port in self.alive():
            text = self.node(port).execute_command("CLUSTER", "NODES")
            text = text.decode() if isinstance(text, bytes) else str(text)
            me = next(line.split() for line in text.splitlines() if "myself" in line)
            if "master" in me[2] and len(me) > 8:  # fields 9.. are its slot ranges
                out.append(port)
        return sorted(out)

    def alive(self) -> list[int]:
        return [p for p, proc in self.processes.items() if proc.poll() is None]

    def healthy(self) -> bool:
        """Every live node says cluster_state:ok with all slots served and knows every node
        started (gossip can lag the slots), there are 3 masters and each has a replica in
        sync."""
        try:
            for port in self.alive():
                info = self.info(port)
                if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != "16384":
                    return False
                if info.get("cluster_known_nodes") != str(len(self.ports)):
                    return False
            masters = self.masters()
            if len(masters) != MASTERS:
                return False
            return all(self._replicated(p) for p in masters)
        except (redis.RedisError, OSError):
            return False

    def _replicated(self, port: int) -> bool:
        """A replica of the master on `port` has finished its sync (state=online): until
        then it could not take over, and WAIT 1 could not succeed."""
        info: Any = self.node(port).info("replication")
        replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        return any(r.get("state") == "online" for r in replicas)

    def healthy_without(self, port: int) -> bool:
        """The live nodes say cluster_state:ok with 3 masters, `port` (killed) not one."""
        try:
            for live in self.alive():
                info = self.info(live)
                if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != "16384":
                    return False
            masters = self.masters()
            return len(masters) == MASTERS and port not in masters
        except (redis.RedisError, OSError):
            return False

    def wait_until(self, check: Callable[[], bool], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out after {seconds}s waiting for: {what}")
            time.sleep(0.1)

    def replica_of(self, port: int) -> int:
        """Port of the replica of the master on `port` (asked of the master)."""
        info: Any = self.node(port).info("replication")
        return next(
            int(v["port"]) for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)
        )

    def hold_failover(self, replica: int, held: bool) -> None:
        """While held, the replica on `replica` does not take over from a failed master
        (`cluster-replica-no-failover`): what happens before the failover can be tested
        without racing it."""
        self.node(replica).config_set("cluster-replica-no-failover", "yes" if held else "no")

    def kill(self, port: int) -> None:
        """SIGKILL one node: no shutdown, no final save."""
        process = self.processes[port]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def restart(self, port: int) -> None:
        """Start a killed node again on its port and files (it rejoins the cluster)."""
        self._launch(port)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def start_cluster(directory: Path) -> LocalCluster | None:
    """A started cluster, or None when redis-server or redis-cli is not installed."""
    binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if binary is None or cli is None:
        return None
    return LocalCluster(directory, binary, cli)
