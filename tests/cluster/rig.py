"""A real Redis Cluster on loopback: 3 masters and 3 replicas, each its own redis-server.

Started with `redis-server --cluster-enabled yes` on free ports and joined by
`redis-cli --cluster create`; every node runs in a temporary directory that goes with it."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from rating.keys import Keyspace
from runtime.settings import Settings

NODE_TIMEOUT_MS = 5000  # silence before a replica takes over; shorter misfires on a loaded box


@dataclass
class Node:
    port: int
    bus_port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--cluster-port",
                str(self.bus_port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(self.workdir / "nodes.conf"),
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                # as production is told to run (README, Scale): with the default "yes", a
                # failed master stops every master's slots until its replica takes over
                "--cluster-require-full-coverage",
                "no",
                "--appendonly",
                "no",
                "--save",
                "",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(self.workdir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        """kill -9: no goodbye to the cluster, as when a machine dies."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return out.stdout.strip()


@dataclass
class Cluster:
    nodes: list[Node] = field(default_factory=list)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tg-cluster-")))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self, size: int = 6, replicas: int = 1) -> Cluster:
        ports = free_ports(2 * size)
        for i in range(size):
            workdir = self.root / f"n{i}"
            workdir.mkdir()
            self.nodes.append(Node(ports[2 * i], ports[2 * i + 1], workdir))
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            wait_until(lambda n=node: n.cli("ping") == "PONG", what=f"node {node.port}")
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                "--cluster-replicas",
                str(replicas),
                "--cluster-yes",
            ],
            capture_output=True,
            timeout=60,
            check=True,
        )
        wait_until(
            lambda: self.healthy()
            and self.replicas_attached(replicas * size // (replicas + 1))
            and self.replicas_synced(),
            what="cluster state ok and every replica attached and synced",
            timeout_s=60.0,
        )
        return self

    def replicas_synced(self) -> bool:
        """Every replica has finished its first sync with its master. A replica that never
        synced counts its data as infinitely old and refuses to take over (Redis'
        replica validity check), so a master killed before that never fails over; on a
        loaded machine the first sync can take longer than the cluster's own start."""
        for node in self.nodes:
            if node.proc is None or node.proc.poll() is not None:
                continue
            info = node.cli("info", "replication")
            if "role:slave" in info and (
                "master_link_status:up" not in info or "master_sync_in_progress:0" not in info
            ):
                return False
        return True

    def replicas_attached(self, count: int) -> bool:
        """Every node sees `count` replicas (the create command attaches them after it
        returns, and a master without one would not fail over)."""
        return all(
            sum(
                "slave" in line.split()[2].split(",")
                for line in n.cli("cluster", "nodes").splitlines()
                if len(line.split()) > 2
            )
            == count
            for n in self.nodes
        )

    def healthy(self) -> bool:
        live = [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]
        return all("cluster_state:ok" in n.cli("cluster", "info") for n in live)

    def master_of_slot(self, slot: int) -> Node:
        """The live node that serves `slot` now."""
        for node in self.nodes:
            if node.proc is None or node.proc.poll() is not None:
                continue
            for line in node.cli("cluster", "nodes").splitlines():
                parts = line.split()
                if "myself" not in parts[2] or "master" not in parts[2]:
                    continue
                for rng in parts[8:]:
                    lo, _, hi = rng.partition("-")
                    if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                        return node
        raise LookupError(f"no live master serves slot {slot}")

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now, with their +10000 neighbours left alone (the bus ports
    are chosen here too, so any free port will do)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_until(check: object, *, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.1)
    raise TimeoutError(f"waited {timeout_s} s for {what}")


@contextmanager
def running_cluster() -> Iterator[Cluster]:
    """A cluster of its own for the `with` block (a fixture's scope), stopped after it."""
    cluster = Cluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


def on_cluster(settings: Settings, cluster: Cluster, prefix: str) -> Settings:
    """`settings` pointed at `cluster`, under a fresh key prefix starting with `prefix`."""
    # 64 tags: enough that every master holds several, few enough to keep rounds short
    return replace(
        settings,
        redis_url=cluster.url,
        redis_mode="cluster",
        keyspace=Keyspace(f"{prefix}{uuid.uuid4().hex[:10]}", 64),
    )
