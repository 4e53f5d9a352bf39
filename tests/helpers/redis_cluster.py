"""A throwaway Redis Cluster: three masters and a replica each, on free ports.

Six ``redis-server --cluster-enabled yes`` processes (see :mod:`.redis_server`), joined by
``redis-cli --cluster create --cluster-replicas 1``. A short node timeout lets a replica
take over within a few seconds of its master's death, as a test that kills one needs.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from tests.helpers.ports import stable_port
from tests.helpers.redis_server import RedisServer

#: Milliseconds without an answer before a master is failed over.
NODE_TIMEOUT_MS = 1000
#: How long the cluster may take to agree on its slots, or on a failover (a busy box).
SETTLE_TIMEOUT = 60.0


def redis_cli_binary() -> str | None:
    """Path of the ``redis-cli`` binary, or None if there is none."""
    return shutil.which("redis-cli")


def _cli(port: int, *args: str) -> str:
    cli = redis_cli_binary()
    assert cli is not None
    done = subprocess.run([cli, "-h", "127.0.0.1", "-p", str(port), *args],
                          capture_output=True, text=True, timeout=30, check=False)
    return done.stdout


class RedisCluster:
    """Six nodes that a test owns; it may kill a master and wait for the failover."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.directory = directory
        self.nodes: list[RedisServer] = []
        for i in range(masters * 2):
            bus = stable_port()
            node = RedisServer(directory / f"node{i}", extra_args=[
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-port", str(bus),
                # A replica takes over however long it was cut off: a test kills its master.
                "--cluster-replica-validity-factor", "0",
            ])
            node.port = stable_port()
            self.nodes.append(node)

    @property
    def url(self) -> str:
        """A seed URL: any live node will do, the client learns the others."""
        return f"redis://127.0.0.1:{self.live()[0].port}"

    def live(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.running]

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        out = _cli(self.nodes[0].port, "--cluster", "create", *addresses,
                   "--cluster-replicas", "1", "--cluster-yes")
        if "All 16384 slots covered" not in out:
            raise RuntimeError(f"redis-cli --cluster create failed: {out[-500:]}")
        self.wait_ok()
        return self

    def wait_ok(self, timeout: float = SETTLE_TIMEOUT) -> None:
        """Return once every live node says the cluster is ok and has 3 masters."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._ok(node.port) for node in self.live()):
                return
            time.sleep(0.05)  # polling the nodes' view: there is no event to await
        raise RuntimeError(f"cluster not ok: {_cli(self.nodes[0].port, 'cluster', 'info')}")

    def _ok(self, port: int) -> bool:
        info = _cli(port, "cluster", "info")
        if "cluster_state:ok" not in info or "cluster_slots_ok:16384" not in info:
            return False
        masters = [line for line in _cli(port, "cluster", "nodes").splitlines()
                   if "master" in line and "fail" not in line]
        return len(masters) == len(self.nodes) // 2

    def master_of(self, key: str) -> RedisServer:
        """The node that holds ``key``'s slot now."""
        slot = int(_cli(self.live()[0].port, "cluster", "keyslot", key).strip())
        for line in _cli(self.live()[0].port, "cluster", "nodes").splitlines():
            fields = line.split()
            if "master" not in fields[2] or "fail" in fields[2]:
                continue
            for part in fields[8:]:
                low, _, high = part.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    port = int(fields[1].split(":")[1].split("@")[0])
                    return next(node for node in self.nodes if node.port == port)
        raise RuntimeError(f"no master holds slot {slot}")

    def kill(self, node: RedisServer) -> None:
        """SIGKILL one node (a crash: what it did not replicate is gone)."""
        node.stop(kill=True)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

