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


def _node_args(bus: int) -> list[str]:
    return [
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
        "--cluster-port", str(bus),
        # A replica takes over however long it was cut off: a test kills its master.
        "--cluster-replica-validity-factor", "0",
    ]


def _distinct_port(taken: set[int]) -> int:
    """A stable port (see tests/helpers/ports.py) that no other node of the cluster has:
    twelve ports are picked before any is bound, so a port free for one pick is still
    free for the next."""
    while (port := stable_port()) in taken:
        pass
    taken.add(port)
    return port


def _start_node(node: RedisServer, taken: set[int], attempts: int = 3) -> None:
    """Start a node, on fresh ports if one it was given was taken since it was picked
    (by another test process: the bus port's bind failed once in a CI run)."""
    for attempt in range(attempts):
        try:
            node.start()
            return
        except RuntimeError:
            if attempt == attempts - 1:
                raise
            (node.directory / "nodes.conf").unlink(missing_ok=True)
            node.port = _distinct_port(taken)
            node.extra_args = _node_args(_distinct_port(taken))


class RedisCluster:
    """Six nodes that a test owns; it may kill a master and wait for the failover."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.directory = directory
        self.nodes: list[RedisServer] = []
        self._taken: set[int] = set()
        for i in range(masters * 2):
            node = RedisServer(directory / f"node{i}",
                               extra_args=_node_args(_distinct_port(self._taken)))
            node.port = _distinct_port(self._taken)
            self.nodes.append(node)

    @property
    def url(self) -> str:
        """A seed URL: any live node will do, the client learns the others."""
        return f"redis://127.0.0.1:{self.live()[0].port}"

    def live(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.running]

    def start(self) -> RedisCluster:
        for node in self.nodes:
            _start_node(node, self._taken)
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        out = _cli(self.nodes[0].port, "--cluster", "create", *addresses,
                   "--cluster-replicas", "1", "--cluster-yes")
        if "All 16384 slots covered" not in out:
            raise RuntimeError(f"redis-cli --cluster create failed: {out[-500:]}")
        self.wait_ok()
        return self

    def wait_ok(self, timeout: float = SETTLE_TIMEOUT) -> None:
        """Return once every live node says the cluster is ok, with 3 live masters."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._ok(node.port) for node in self.live()):
                return
            time.sleep(0.05)  # polling the nodes' view: there is no event to await
        port = self.live()[0].port
        raise RuntimeError(f"cluster not ok: {_cli(port, 'cluster', 'info')}\n"
                           f"{_cli(port, 'cluster', 'nodes')}")

    def _ok(self, port: int) -> bool:
        info = _cli(port, "cluster", "info")
        if "cluster_state:ok" not in info or "cluster_slots_ok:16384" not in info:
            return False
        live = {node.port for node in self.live()}
        masters = [line.split() for line in _cli(port, "cluster", "nodes").splitlines()
                   if "master" in line and "fail" not in line]
        # A killed master still counts until the others notice: wait for its successor.
        return len(masters) == len(self.nodes) // 2 and all(
            int(fields[1].split(":")[1].split("@")[0]) in live for fields in masters)

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

    def node_id(self, node: RedisServer) -> str:
        return _cli(node.port, "cluster", "myid").strip()

    def masters(self) -> list[RedisServer]:
        """The live masters."""
        out: list[RedisServer] = []
        for line in _cli(self.live()[0].port, "cluster", "nodes").splitlines():
            fields = line.split()
            if "master" in fields[2] and "fail" not in fields[2]:
                port = int(fields[1].split(":")[1].split("@")[0])
                out.extend(node for node in self.nodes if node.port == port)
        return out

    def move_slot(self, key: str, to: RedisServer) -> None:
        """Reshard ``key``'s slot to the master ``to``, its keys migrated as
        ``redis-cli --cluster reshard`` does (IMPORTING, MIGRATING, MIGRATE, SETSLOT)."""
        source = self.master_of(key)
        slot = _cli(source.port, "cluster", "keyslot", key).strip()
        source_id, target_id = self.node_id(source), self.node_id(to)
        _cli(to.port, "cluster", "setslot", slot, "importing", source_id)
        _cli(source.port, "cluster", "setslot", slot, "migrating", target_id)
        while True:
            found = _cli(source.port, "cluster", "getkeysinslot", slot, "100").split()
            if not found:
                break
            out = _cli(source.port, "migrate", "127.0.0.1", str(to.port), "", "0", "5000",
                       "replace", "keys", *found)
            if "OK" not in out and "NOKEY" not in out:
                raise RuntimeError(f"MIGRATE failed: {out}")
        for node in self.masters():
            _cli(node.port, "cluster", "setslot", slot, "node", target_id)

    def kill(self, node: RedisServer) -> None:
        """SIGKILL one node (a crash: what it did not replicate is gone)."""
        node.stop(kill=True)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

