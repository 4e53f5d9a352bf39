"""``roomcast serve --workers N``: real worker processes on one port over a real Redis.

Every test runs the command as users do (a supervisor process and its workers) and
talks to the shared port only: which worker answers is the kernel's choice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from roomcast.config import Settings
from roomcast.exceptions import ConfigError
from roomcast.server import workers
from tests.cluster.support import eventually
from tests.helpers.gateway import GatewayProcess
from tests.helpers.ports import stable_port
from tests.helpers.redis_server import RedisServer
from tests.helpers.ws import Peer, connect_peer

pytestmark = pytest.mark.redis

API_KEY = "workers-api-key-0123456789abcdef"
WORKERS = 2
CLIENTS = 12  # all on one of two workers by chance: 2 in 2**12


@pytest.fixture
def served(redis_server: RedisServer) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(env={"REDIS_URL": redis_server.url, "ROOMCAST_API_KEY": API_KEY},
                        args=["--workers", str(WORKERS)])
    gw.start()  # returns on the supervisor's banner: every worker listens
    yield gw
    gw.close()


async def status(gw: GatewayProcess) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=20) as client:
        reply = await client.get(f"{gw.base_url}/websocket/status")
    reply.raise_for_status()
    body: dict[str, Any] = reply.json()
    return body


async def api(gw: GatewayProcess, method: str, path: str, **kw: Any) -> Any:
    async with httpx.AsyncClient(timeout=20, headers={"X-API-Key": API_KEY}) as client:
        reply = await client.request(method, f"{gw.base_url}{path}", **kw)
    reply.raise_for_status()
    return reply.json()


async def connect_all(gw: GatewayProcess, prefix: str) -> list[Peer]:
    return list(await asyncio.gather(
        *(connect_peer(gw, f"{prefix}{i}", groups=["blue"]) for i in range(CLIENTS))))


async def workers_of(gw: GatewayProcess, peers: list[Peer]) -> set[int]:
    """The worker index holding each peer's connection (from the cluster registry)."""
    by_server = {row["server_id"]: row["index"] for row in (await status(gw))["workers"]["workers"]}
    wanted = {p.conn_id for p in peers}

    async def listed() -> dict[str, str] | None:
        rows = (await api(gw, "GET", "/websocket/connections"))["connections"]
        found = {r["id"]: r["server_id"] for r in rows if r["id"] in wanted}
        return found if len(found) == len(wanted) else None

    found = await eventually(listed, "every connection in the registry")
    return {by_server[server] for server in found.values()}


async def room_message_reaches_all(gw: GatewayProcess, peers: list[Peer], text: str) -> None:
    await api(gw, "POST", "/websocket/rooms/group:blue/message",
              json={"type": "message", "data": {"text": text}})
    for peer in peers:
        await peer.expect(lambda m: m["type"] == "message" and m["data"] == {"text": text})


async def test_clients_spread_over_the_workers_and_room_messages_reach_all(
    served: GatewayProcess,
) -> None:
    body = await status(served)
    table = body["workers"]
    assert table["count"] == WORKERS and table["this"] in range(WORKERS)
    assert [row["alive"] for row in table["workers"]] == [True] * WORKERS
    assert all(row["server_id"] for row in table["workers"])
    peers = await connect_all(served, "spread")
    try:
        assert await workers_of(served, peers) == set(range(WORKERS))
        # Posted to whichever worker accepts the request; members on the other one
        # are reached through Redis.
        for n in range(3):
            await room_message_reaches_all(served, peers, f"hello {n}")
    finally:
        await asyncio.gather(*(p.close() for p in peers))
    async with httpx.AsyncClient(timeout=20) as client:
        metrics = (await client.get(f"{served.base_url}/metrics")).text
    assert f"roomcast_workers {WORKERS:.1f}" in metrics
    assert 'roomcast_worker_restarts_total{worker="0"} 0.0' in metrics


async def test_a_worker_that_dies_is_restarted_and_logged(served: GatewayProcess) -> None:
    before = {row["index"]: row for row in (await status(served))["workers"]["workers"]}
    os.kill(before[0]["pid"], signal.SIGKILL)

    async def restarted() -> dict[str, Any] | None:
        rows = {row["index"]: row for row in (await status(served))["workers"]["workers"]}
        row = rows[0]
        ok = row["alive"] and row["restarts"] == 1 and row["server_id"] is not None
        return row if ok and row["pid"] != before[0]["pid"] else None

    row = await eventually(restarted, "worker 0 restarted")
    assert row["last_exit"] == -signal.SIGKILL
    assert "worker_exited" in served.log()
    peers = await connect_all(served, "after")
    try:
        await room_message_reaches_all(served, peers, "still here")
    finally:
        await asyncio.gather(*(p.close() for p in peers))
    async with httpx.AsyncClient(timeout=20) as client:
        metrics = (await client.get(f"{served.base_url}/metrics")).text
    assert 'roomcast_worker_restarts_total{worker="0"} 1.0' in metrics


async def test_sigterm_drains_every_worker(served: GatewayProcess) -> None:
    peers = await connect_all(served, "drain")
    assert await workers_of(served, peers) == set(range(WORKERS))
    proc = served.proc
    assert proc is not None
    code = await asyncio.to_thread(served.stop, 60.0)
    assert code == 0
    for peer in peers:  # every worker said goodbye to its clients: 1001 going away
        await asyncio.wait_for(peer.ws.wait_closed(), 20)
        assert peer.ws.close_code == 1001
    assert "workers_stopped" in served.log()


def test_workers_without_redis_is_a_clear_error(tmp_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(JWT_SECRET="x" * 32, ROOMCAST_DB=str(tmp_path / "m.db"))
    done = subprocess.run(
        [sys.executable, "-m", "roomcast", "serve", "--workers", "2", "--port", str(stable_port())],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert "--workers 2 needs REDIS_URL" in done.stderr


def test_a_platform_without_so_reuseport_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(workers=3, redis_url="redis://127.0.0.1:1/0")
    workers.check(settings)  # Linux has it
    monkeypatch.delattr(socket, "SO_REUSEPORT")
    with pytest.raises(ConfigError, match="SO_REUSEPORT"):
        workers.check(settings)
    workers.check(Settings(workers=1))  # one process needs neither
