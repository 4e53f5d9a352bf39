"""SDK clients behind relays, and what each one delivered to its app.

Every client of a recovery test connects through its own :class:`~tests.recovery.relay.Relay`,
so the test can drop, refuse or stall its network without touching the client. A
:class:`Watcher` records, in order, what the client hands its app: the numbered
publications of the test's room and the recovery outcomes.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from roomcast.client import Backoff, Client, Message
from roomcast.client.positions import Recovery
from tests.cluster.support import API_KEY
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token
from tests.recovery.relay import Relay

#: Reconnect quickly: this is configuration, not a wait.
FAST = Backoff(initial=0.05, factor=1.5, max_delay=0.3, jitter=0.2)
#: Bound of every wait for an event: generous, as a busy machine is slow.
DEADLINE = 60.0


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Watcher:
    """One SDK client, its relay, and what it delivered to the app."""

    name: str
    gateway: GatewayProcess
    relay: Relay
    client: Client
    room: str
    #: ("seq", n) for publication n, ("recovery", Recovery) for an outcome, in order.
    events: list[tuple[str, Any]] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    markers: set[str] = field(default_factory=set)
    _waiters: dict[str, asyncio.Event] = field(default_factory=dict)

    def attach(self) -> None:
        self.client.on_room(self.room, self._message)
        self.client.on_recovery(self._recovery, room=self.room)

    def _message(self, message: Message) -> None:
        data = message.data
        if isinstance(data.get("seq"), int):
            self.seqs.append(data["seq"])
            self.events.append(("seq", data["seq"]))
        marker = data.get("marker")
        if isinstance(marker, str):
            self.markers.add(marker)
            waiter = self._waiters.get(marker)
            if waiter is not None:
                waiter.set()

    def _recovery(self, recovery: Recovery) -> None:
        self.recoveries.append(recovery)
        self.events.append(("recovery", recovery))

    async def wait_marker(self, marker: str) -> None:
        """Until the app got the publication carrying ``marker``."""
        if marker in self.markers:
            return
        event = self._waiters.setdefault(marker, asyncio.Event())
        await event.wait()

    def missing(self, n: int) -> list[int]:
        return sorted(set(range(n)) - set(self.seqs))

    def describe(self, n: int) -> str:
        dups = len(self.seqs) - len(set(self.seqs))
        return (f"{self.name}: {len(self.seqs)} delivered, {dups} duplicates, "
                f"missing {self.missing(n)[:20]}, out of order "
                f"{self.seqs != sorted(self.seqs)}, recoveries "
                f"{[(r.recovered, r.reason.value, r.replayed) for r in self.recoveries]}, "
                f"dropped by the SDK as duplicates {self.client.duplicates_dropped}")


async def start_watchers(gateways: list[GatewayProcess], secret: str, room: str, group: str,
                         n: int, *, small_buffer: frozenset[int] = frozenset()
                         ) -> list[Watcher]:
    """``n`` clients in ``group``, spread over ``gateways`` in turn, all in their room."""
    watchers = []
    for i in range(n):
        gw = gateways[i % len(gateways)]
        relay = await Relay(gw.port, small_buffer=i in small_buffer).start()
        user = f"w{i}-{uid('u')}"
        client = Client(relay.ws_url(), token=make_token(secret, user, groups=[group]),
                        backoff=FAST)
        watcher = Watcher(f"client{i}@gw{i % len(gateways)}", gw, relay, client, room)
        watcher.attach()
        watchers.append(watcher)
    async with asyncio.timeout(DEADLINE):
        await asyncio.gather(*(w.client.connect() for w in watchers))
        await asyncio.gather(*(w.client.room(room).wait_joined() for w in watchers))
    return watchers


async def stop_watchers(watchers: list[Watcher]) -> None:
    for w in watchers:
        await w.client.close()
        await w.relay.close()


def api_client(gw: GatewayProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gw.base_url, timeout=DEADLINE,
                             headers={"X-API-Key": API_KEY})

