"""The soak's client side: N picows connections that churn, and steady API traffic.

Runs inside the soak runner's event loop (one process, pinned to the generator CPU).
Every connection is a user in ``user:<id>`` plus two group rooms taken from its JWT:
``group:c<k>`` (a small team, ``corps`` of them) and ``group:a<k>`` (a large one,
``alliances`` of them). Churn closes a random connection and opens a replacement
(the same user again, or a user never seen before) at an even pace; traffic is
``POST`` through the server API, messages carrying their send time, so the latency
of every delivery is measured on receipt.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from benchmarks.common import mint_token, parse_ts, percentile

TEXT = WSMsgType.TEXT
time_ns = time.time_ns


@dataclass
class LoadConfig:
    """Size, layout and rates of the soak load."""

    ws_url: str
    http_base: str
    api_key: str
    jwt_secret: str
    n: int
    churn_per_min: float  # share of the connections replaced each minute
    new_user_share: float = 0.5  # a replacement is a new user this often
    corps: int = 200
    alliances: int = 20
    user_rate: float = 20.0  # messages/s to one user (random connected user)
    corp_rate: float = 2.0  # messages/s to a random small group room
    alliance_rate: float = 0.2  # messages/s to a random large group room
    http_concurrency: int = 8
    connect_concurrency: int = 100
    handshake_timeout_s: float = 60.0
    seed: int = 1


def user_uuid(index: int) -> str:
    """The ``user_id`` ``mint_token`` puts in the token of user ``index``."""
    return str(uuid.UUID(int=index + 1))


def groups_of(index: int, cfg: LoadConfig) -> list[str]:
    return [f"c{index % cfg.corps}", f"a{index % cfg.alliances}"]


class Counters:
    """What the listeners and tasks count; read and partly reset by the sampler."""

    def __init__(self) -> None:
        self.lat = array.array("q")  # ns, deliveries since the last sample
        self.delivered = 0
        self.frames = 0
        self.other = 0  # room_update, welcome, ...
        self.ws_errors = 0
        self.error_sample = ""
        self.unexpected_closes = 0
        self.closed = 0  # by churn
        self.opened = 0  # by churn, joined
        self.connect_failures = 0
        self.refilled = 0  # empty slots (failed connects) filled again by churn
        self.failure_sample = ""
        self.posts = 0
        self.post_errors = 0  # non-2xx (404/202 are not errors: see post())
        self.post_not_found = 0
        self.post_sample = ""
        self.posts_skipped = 0  # the API could not keep up: the tick had no free slot


class Client(WSListener):
    """One connection; joined once its three ``room_joined`` arrived."""

    ROOMS = 3  # user:<id> + two group rooms

    def __init__(self, counters: Counters, user: int) -> None:
        super().__init__()
        self.c = counters
        self.user = user
        self.rooms = 0
        self.closing = False
        self.joined = asyncio.Event()
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        now = time_ns()
        c = self.c
        c.frames += 1
        if frame.msg_type is not TEXT:
            return
        payload = frame.get_payload_as_bytes()
        ts = parse_ts(payload)
        if ts > 0:
            c.lat.append(now - ts)
            c.delivered += 1
        elif b'"type":"room_joined"' in payload:
            self.rooms += 1
            if self.rooms >= self.ROOMS:
                self.joined.set()
        elif b'"type":"error"' in payload:
            c.ws_errors += 1
            c.error_sample = c.error_sample or payload[:300].decode("utf-8", "replace")
        else:
            c.other += 1

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.closing:
            self.c.unexpected_closes += 1
        self.closing = True

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.send_close(WSCloseCode.OK)
            self.transport.disconnect()


class SoakLoad:
    """Holds the connections, churns them and publishes; ``sample`` reads the counters."""

    def __init__(self, cfg: LoadConfig) -> None:
        self.cfg = cfg
        self.c = Counters()
        self.rng = random.Random(cfg.seed)
        self.slots: list[Client | None] = [None] * cfg.n
        self.next_user = cfg.n  # users 0..n-1 first; new users after them
        self.session: aiohttp.ClientSession | None = None
        self.connect_sem = asyncio.Semaphore(cfg.connect_concurrency)
        self.http_sem = asyncio.Semaphore(cfg.http_concurrency)
        self.tasks: list[asyncio.Task[None]] = []
        self.pending: set[asyncio.Task[Any]] = set()
        self.connecting: set[int] = set()
        self.seq = 0

    # ------------------------------------------------------------ connections
    def live(self) -> int:
        return sum(1 for cl in self.slots if cl is not None and not cl.closing)

    async def open(self, slot: int, user: int) -> bool:
        """Connect ``user`` into ``slot`` and wait for its rooms; False when it failed."""
        cfg = self.cfg
        token = mint_token(cfg.jwt_secret, user, groups_of(user, cfg))
        headers = {"Authorization": "Bearer " + token}
        for attempt in range(3):
            client = Client(self.c, user)
            try:
                async with self.connect_sem:
                    await self._connect(client, headers)
                self.slots[slot] = client
                return True
            except Exception as exc:  # counted, retried
                client.close()
                if attempt == 2:
                    self.c.connect_failures += 1
                    self.c.failure_sample = self.c.failure_sample or f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(0.2 * (attempt + 1))
        return False

    async def _connect(self, client: Client, headers: dict[str, str]) -> None:
        cfg = self.cfg
        await ws_connect(
            lambda: client,
            cfg.ws_url,
            extra_headers=headers,
            websocket_handshake_timeout=cfg.handshake_timeout_s,
        )
        await asyncio.wait_for(client.joined.wait(), cfg.handshake_timeout_s)

    async def connect_all(self) -> float:
        """Open the N initial connections (users 0..N-1); seconds it took."""
        t0 = time.perf_counter()
        await asyncio.gather(*(self.open(i, i) for i in range(self.cfg.n)))
        return time.perf_counter() - t0

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _replace(self, slot: int) -> None:
        client = self.slots[slot]
        if slot in self.connecting:
            return
        if client is None:
            # A slot whose connect failed (counted then): churn fills it again.
            self.connecting.add(slot)
            try:
                if await self.open(slot, self.next_user):
                    self.next_user += 1
                    self.c.refilled += 1
            finally:
                self.connecting.discard(slot)
            return
        if client.closing:
            return
        client.close()
        self.slots[slot] = None
        self.c.closed += 1
        if self.rng.random() < self.cfg.new_user_share:
            user = self.next_user
            self.next_user += 1
        else:
            user = client.user
        self.connecting.add(slot)
        try:
            if await self.open(slot, user):
                self.c.opened += 1
        finally:
            self.connecting.discard(slot)

    async def churn(self) -> None:
        """Replace ``churn_per_min`` x N connections a minute, one at a time, evenly."""
        per_s = self.cfg.churn_per_min * self.cfg.n / 60.0
        if per_s <= 0:
            return
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        k = 0
        while True:
            k += 1
            delay = t0 + k / per_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            slot = self.rng.randrange(self.cfg.n)
            self._spawn(self._replace(slot))

    # ---------------------------------------------------------------- traffic
    def body(self) -> bytes:
        self.seq += 1
        return b'{"type":"message","data":{"ts":%d,"seq":%d,"text":"soak"}}' % (
            time_ns(),
            self.seq,
        )

    async def post(self, path: str) -> None:
        assert self.session is not None
        try:
            async with self.session.post(self.cfg.http_base + path, data=self.body()) as resp:
                await resp.read()
                self.c.posts += 1
                # 404: the user left between the pick and the post (churn); not a fault.
                if resp.status == 404:
                    self.c.post_not_found += 1
                elif resp.status >= 300:
                    self.c.post_errors += 1
                    self.c.post_sample = self.c.post_sample or f"{resp.status} {path}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.c.post_errors += 1
            self.c.post_sample = self.c.post_sample or repr(exc)
        finally:
            self.http_sem.release()

    def _target(self, kind: str) -> str:
        if kind == "user":
            for _ in range(20):
                client = self.slots[self.rng.randrange(self.cfg.n)]
                if client is not None and not client.closing:
                    return f"/websocket/users/{user_uuid(client.user)}/message"
            kind = "corp"
        if kind == "corp":
            return f"/websocket/rooms/group:c{self.rng.randrange(self.cfg.corps)}/message"
        return f"/websocket/rooms/group:a{self.rng.randrange(self.cfg.alliances)}/message"

    async def traffic(self) -> None:
        """Publish at the configured rates, in 100 ms ticks (fractions carried over)."""
        cfg = self.cfg
        rates = {"user": cfg.user_rate, "corp": cfg.corp_rate, "alliance": cfg.alliance_rate}
        owed = dict.fromkeys(rates, 0.0)
        tick = 0.1
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        k = 0
        while True:
            k += 1
            delay = t0 + k * tick - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            for kind, rate in rates.items():
                owed[kind] += rate * tick
                while owed[kind] >= 1.0:
                    owed[kind] -= 1.0
                    if self.http_sem.locked():
                        self.c.posts_skipped += 1
                        continue
                    await self.http_sem.acquire()
                    self._spawn(self.post(self._target(kind)))

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.cfg.http_concurrency),
            headers={"X-API-Key": self.cfg.api_key, "Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=30),
        )

    def run(self) -> None:
        """Start churn and traffic (after ``connect_all``)."""
        self.tasks = [asyncio.ensure_future(self.churn()), asyncio.ensure_future(self.traffic())]

    async def stop_traffic(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.pending:
            await asyncio.wait(list(self.pending), timeout=60)

    async def close_all(self) -> None:
        """Close every connection and the HTTP session (the end of the run)."""
        for i, client in enumerate(self.slots):
            if client is not None:
                client.close()
                self.slots[i] = None
            if i % 500 == 499:
                await asyncio.sleep(0)  # let the closes go out
        if self.session is not None:
            await self.session.close()
            self.session = None

    def sample(self) -> dict[str, Any]:
        """Counters now; latency percentiles over the deliveries since the last sample."""
        c = self.c
        lat = sorted(c.lat)
        c.lat = array.array("q")
        return {
            "lat_ns": lat,
            "live": self.live(),
            "delivered": c.delivered,
            "interval_deliveries": len(lat),
            "p50_ms": percentile(lat, 0.50) / 1e6,
            "p99_ms": percentile(lat, 0.99) / 1e6,
            "max_ms": lat[-1] / 1e6 if lat else float("nan"),
            "frames": c.frames,
            "other_frames": c.other,
            "closed": c.closed,
            "opened": c.opened,
            "users_seen": self.next_user,
            "connect_failures": c.connect_failures,
            "refilled": c.refilled,
            "unexpected_closes": c.unexpected_closes,
            "ws_errors": c.ws_errors,
            "posts": c.posts,
            "post_errors": c.post_errors,
            "post_not_found": c.post_not_found,
            "posts_skipped": c.posts_skipped,
        }

    def samples_of_errors(self) -> dict[str, str]:
        c = self.c
        return {
            "ws_error": c.error_sample,
            "connect": c.failure_sample,
            "post": c.post_sample,
        }
