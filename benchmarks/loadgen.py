"""The load generator: one process of picows clients, driven by the runner.

picows (Cython framing, aiofastnet/uvloop transport) is the fastest Python client
available, so it is the one least likely to be the bottleneck. The runner starts
this module pinned to the generator CPU with a JSON config and then sends it one
JSON command a line on stdin; each command is answered by one JSON line on stdout:

- ``warmup``: open the trigger connection (a room member on the publishing server);
- ``connect``: open N authenticated connections and wait until all are in the room;
- ``settle``: wait until no frames arrive and the servers are idle;
- ``burst`` (``m``): publish M messages at full speed, wait for N x M deliveries;
- ``paced`` (``count``, ``rate``): publish at a fixed rate (idle-path latency);
- ``sequential`` (``count``): publish one message, wait for its N deliveries, repeat
  (one message at a time however slow the server is: for instruction counts);
- ``reconnect`` (``server_pids``): after the runner restarted the servers, every client
  reconnects with ``?recover=1`` and its positions (roomcast), timed until each has the
  answer (``room_joined`` with ``recovered``) for all its rooms;
- ``quit``.

Every wait has a deadline; a missing delivery makes a figure below 100%, never a hang.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import math
import os
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import psutil
import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from benchmarks.common import (
    BENCH_GROUP,
    BENCH_ROOM,
    TARGET_MESSAGE_BYTES,
    bytes_written,
    cpu_seconds,
    mint_token,
    parse_ts,
    percentile,
    writes_made,
)

TEXT = WSMsgType.TEXT
CLOSE = WSMsgType.CLOSE
time_ns = time.time_ns
ROOM_BYTES = BENCH_ROOM.encode()


@dataclass
class Config:
    """What the runner tells the generator (JSON on argv[1])."""

    protocol: str  # "roomcast" | "bare" | "socketio"
    urls: list[str]  # clients are split round-robin; the trigger uses urls[0]
    n: int
    jwt_secret: str = "bench-secret"
    groups: list[str] = field(default_factory=lambda: [BENCH_GROUP])
    trigger: str = "ws"  # "ws" | "http"
    http_url: str = ""
    api_key: str = ""
    http_concurrency: int = 4
    connect_concurrency: int = 100
    handshake_timeout_s: float = 30.0
    server_pids: list[int] = field(default_factory=list)
    aux_pids: list[int] = field(default_factory=list)  # e.g. redis: reported apart
    stall_s: float = 10.0
    #: The socket.io server writes JSON without spaces (Node's JSON.stringify).
    compact_json: bool = False
    #: Receivers offer permessage-deflate and inflate compressed frames.
    deflate: bool = False
    join_deadline_s: float = 180.0


class Stats:
    """Counters the listeners update on every frame (kept flat: this is the hot path)."""

    def __init__(self) -> None:
        self.lat = array.array("q")
        self.last_rx = 0
        self.phase_start = 1 << 62  # nothing counts until a phase starts
        self.target = 1 << 62
        self.stale = 0
        self.nbytes = 0
        self.wire = 0  # compressed deliveries: frame header + payload as received
        self.compressed = 0
        self.negotiated = 0
        self.frames = 0
        self.other = 0
        self.joined = 0
        self.join_target = 1 << 62
        self.disconnected = 0
        self.errors = 0
        self.error_sample = ""
        self.done = asyncio.Event()
        self.all_joined = asyncio.Event()

    def start_phase(self, target: int) -> None:
        self.lat = array.array("q")
        self.last_rx = 0
        self.stale = 0
        self.nbytes = 0
        self.wire = 0
        self.compressed = 0
        self.other = 0
        self.target = target
        self.done.clear()
        self.phase_start = time_ns()

    def note_error(self, payload: bytes) -> None:
        self.errors += 1
        if not self.error_sample:
            self.error_sample = payload[:300].decode("utf-8", "replace")


class Listener(WSListener):
    """One receiving client. Subclasses know their protocol's control frames."""

    def __init__(self, stats: Stats) -> None:
        super().__init__()
        self.stats = stats
        self.count = 0
        self.joined = False
        self.transport: WSTransport | None = None
        self.index = -1  # the client (user and server) it was opened for

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        now = time_ns()
        st = self.stats
        st.frames += 1
        if frame.msg_type is not TEXT:
            return
        payload = frame.get_payload_as_bytes()
        ts = parse_ts(payload)
        if ts > 0:
            if ts < st.phase_start:
                st.stale += 1
                return
            lat = st.lat
            lat.append(now - ts)
            st.last_rx = now
            st.nbytes += len(payload)
            self.count += 1
            if len(lat) >= st.target:
                st.done.set()
            return
        self.on_control(transport, payload)

    def on_control(self, transport: WSTransport, payload: bytes) -> None:
        raise NotImplementedError

    def mark_joined(self) -> None:
        if not self.joined:
            self.joined = True
            st = self.stats
            st.joined += 1
            if st.joined >= st.join_target:
                st.all_joined.set()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.stats.disconnected += 1


class RoomcastListener(Listener):
    def __init__(self, stats: Stats) -> None:
        super().__init__(stats)
        #: room_joined frames, parsed only when positions are needed (reconnect).
        self.join_frames: list[bytes] = []

    def on_control(self, transport: WSTransport, payload: bytes) -> None:
        if b'"room_joined"' in payload:
            self.join_frames.append(payload)
            if ROOM_BYTES in payload:
                self.mark_joined()
        elif b'"type":"error"' in payload or b'"type": "error"' in payload:
            self.stats.note_error(payload)
        else:
            self.stats.other += 1


class BareListener(Listener):
    def on_control(self, transport: WSTransport, payload: bytes) -> None:
        if b'"room_joined"' in payload:
            self.mark_joined()
        else:
            self.stats.other += 1


class SocketioListener(Listener):
    """Engine.IO v4 over WebSocket only: ``0{open}`` -> send ``40``; ``2`` -> ``3``."""

    def on_control(self, transport: WSTransport, payload: bytes) -> None:
        if payload == b"2":
            transport.send(TEXT, b"3")
        elif payload.startswith(b"40"):
            self.mark_joined()
        elif payload.startswith(b"0"):
            transport.send(TEXT, b"40")
        elif payload.startswith(b"44") or payload.startswith(b"41"):
            self.stats.note_error(payload)
        else:
            self.stats.other += 1


#: What a browser offers (RFC 7692); the server answers with what it accepted.
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
#: RFC 7692 7.2.2: the receiver appends the empty block the sender stripped.
DEFLATE_TAIL = b"\x00\x00\xff\xff"


class DeflateRoomcastListener(RoomcastListener):
    """A roomcast client that negotiated permessage-deflate: RSV1 frames are inflated.

    One inflater per connection, as a browser keeps: it works whether or not the
    server keeps its context between messages. Counts the compressed frames and
    their size as received (header + payload); otherwise the base listener's path.
    """

    def __init__(self, stats: Stats) -> None:
        super().__init__(stats)
        self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        ext = transport.response.headers.get("Sec-WebSocket-Extensions", "")
        if "permessage-deflate" in ext:
            self.stats.negotiated += 1

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        now = time_ns()
        st = self.stats
        st.frames += 1
        if frame.msg_type is not TEXT:
            return
        payload = frame.get_payload_as_bytes()
        wire = 0
        if frame.rsv1:
            n = len(payload)
            wire = n + (2 if n < 126 else 4 if n < 65536 else 10)
            payload = self.inflater.decompress(payload + DEFLATE_TAIL)
        ts = parse_ts(payload)
        if ts > 0:
            if ts < st.phase_start:
                st.stale += 1
                return
            lat = st.lat
            lat.append(now - ts)
            st.last_rx = now
            st.nbytes += len(payload)
            if wire:
                st.wire += wire
                st.compressed += 1
            self.count += 1
            if len(lat) >= st.target:
                st.done.set()
            return
        self.on_control(transport, payload)


LISTENERS: dict[str, type[Listener]] = {
    "roomcast": RoomcastListener,
    "bare": BareListener,
    "socketio": SocketioListener,
}


class TriggerListener(Listener):
    """The publishing connection: it joins like the others but counts nothing."""

    def __init__(self, stats: Stats, inner: Listener) -> None:
        super().__init__(stats)
        self.inner = inner  # a detached listener of the protocol, for control frames
        self.received = 0
        self.echo_len = 0  # size of the last own message echoed back (roomcast)
        self.echoed = asyncio.Event()
        self.ready = asyncio.Event()
        self.last_message = b""  # the room's latest publication (its position, roomcast)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not TEXT:
            return
        payload = frame.get_payload_as_bytes()
        self.received += 1
        if parse_ts(payload) > 0:
            self.last_message = payload
            self.echo_len = len(payload)
            self.echoed.set()
            return
        inner = self.inner
        inner.on_control(transport, payload)
        if inner.joined:
            self.ready.set()


def message_data(seq: int, pad: str) -> bytes:
    """The ``data`` object: the send time first, so it is cheap to find."""
    return b'{"ts":%d,"seq":%d,"text":"%s"}' % (time_ns(), seq, pad.encode())


def pad_for(target: int, overhead: int) -> str:
    """Padding that makes a delivered frame ``target`` bytes (``overhead`` = frame - data)."""
    return "x" * max(0, target - overhead - len(message_data(100, "")))


def static_overhead(protocol: str, compact_json: bool = False) -> int:
    """Bytes a server adds around ``data`` (bare: the sent envelope; socket.io: event)."""
    data = message_data(100, "")
    if protocol == "socketio":  # 42["msg",{...}] with json.dumps' spaces, or none
        obj = json.loads(data)
        separators = (",", ":") if compact_json else None
        redumped = json.dumps(obj, separators=separators).encode()
        return len(b'42["msg",' + redumped + b"]") - len(data)
    return len(b'{"type":"message","room":"' + ROOM_BYTES + b'","data":}')


class Generator:
    """Connections, trigger and measurements of one run."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.stats = Stats()
        self.listeners: list[Listener] = []
        self.trigger_transport: WSTransport | None = None
        self.trigger_listener: TriggerListener | None = None
        self.warm: list[WSTransport] = []
        self.session: aiohttp.ClientSession | None = None
        self.overhead = static_overhead(cfg.protocol, cfg.compact_json)
        self.pad = pad_for(TARGET_MESSAGE_BYTES, self.overhead)
        self.http_errors = 0
        self.http_error_sample = ""

    # ---------------------------------------------------------------- messages
    def message(self, seq: int) -> bytes:
        data = message_data(seq, self.pad)
        if self.cfg.protocol == "socketio":
            return b'42["publish",' + data + b"]"
        if self.cfg.trigger == "http":
            return b'{"type":"message","data":' + data + b"}"
        return b'{"type":"message","room":"' + ROOM_BYTES + b'","data":' + data + b"}"

    def url(self, i: int) -> str:
        urls = self.cfg.urls
        return urls[i % len(urls)]

    def headers(self, i: int, receiver: bool = False) -> dict[str, str]:
        if self.cfg.protocol != "roomcast":
            return {}
        out = {"Authorization": "Bearer " + mint_token(self.cfg.jwt_secret, i, self.cfg.groups)}
        if receiver and self.cfg.deflate:
            out["Sec-WebSocket-Extensions"] = DEFLATE_OFFER
        return out

    # ---------------------------------------------------------------- samples
    def cpu_sample(self) -> dict[str, Any]:
        def cpu(pids: list[int]) -> float:
            return sum(cpu_seconds(pid) for pid in pids)

        written = sum(bytes_written(pid) for pid in self.cfg.server_pids)
        writes = sum(writes_made(pid) for pid in self.cfg.server_pids)

        per_cpu = psutil.cpu_times(percpu=True)
        return {
            "wall": time.perf_counter(),
            "server": cpu(self.cfg.server_pids),
            "aux": cpu(self.cfg.aux_pids),
            "gen": time.process_time(),
            "written": written,
            "writes": writes,
            "cores": [(sum(c) - c.idle - c.iowait, sum(c)) for c in per_cpu],
        }

    @staticmethod
    def cpu_delta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        wall = max(b["wall"] - a["wall"], 1e-9)
        cores = []
        for (busy0, tot0), (busy1, tot1) in zip(a["cores"], b["cores"], strict=True):
            cores.append((busy1 - busy0) / max(tot1 - tot0, 1e-9))
        return {
            "cpu_window_s": wall,
            "server_cpu_s": b["server"] - a["server"],
            "server_cpu_pct": 100 * (b["server"] - a["server"]) / wall,
            "aux_cpu_s": b["aux"] - a["aux"],
            "server_written_bytes": b["written"] - a["written"],
            "server_writes": b["writes"] - a["writes"],
            "gen_cpu_pct": 100 * (b["gen"] - a["gen"]) / wall,
            "core_busy_pct": [round(100 * c, 1) for c in cores],
        }

    # ---------------------------------------------------------------- commands
    async def warmup(self) -> dict[str, Any]:
        """Open the trigger connection (also warms the server up before RSS 'before')."""
        cfg = self.cfg
        inner = LISTENERS[cfg.protocol](Stats())
        listener = TriggerListener(self.stats, inner)
        i = cfg.n  # a user of its own, after the N receivers
        transport, _ = await ws_connect(
            lambda: listener,
            cfg.urls[0],
            extra_headers=self.headers(i),
            websocket_handshake_timeout=cfg.handshake_timeout_s,
        )
        inner.transport = transport
        await asyncio.wait_for(listener.ready.wait(), 30)
        self.trigger_transport, self.trigger_listener = transport, listener
        # One uncounted member on every other server, so each has served a WebSocket
        # (lazy imports, first allocations) before RSS 'before' is read.
        for k, url in enumerate(cfg.urls[1:], start=1):
            warm = TriggerListener(self.stats, LISTENERS[cfg.protocol](Stats()))
            wt, _ = await ws_connect(
                lambda warm=warm: warm,
                url,
                extra_headers=self.headers(cfg.n + k),
                websocket_handshake_timeout=cfg.handshake_timeout_s,
            )
            warm.inner.transport = wt
            await asyncio.wait_for(warm.ready.wait(), 30)
            self.warm.append(wt)
        if cfg.trigger == "http":
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=cfg.http_concurrency),
                headers={"X-API-Key": cfg.api_key, "Content-Type": "application/json"},
            )
        if cfg.protocol == "roomcast":
            await self.calibrate(listener)
        return {"ok": True, "pad": len(self.pad), "overhead": self.overhead}

    async def calibrate(self, listener: TriggerListener) -> None:
        """Measure roomcast's envelope around ``data`` from the trigger's own echo."""
        self.pad = ""
        body = self.message(100)
        data_len = len(message_data(100, ""))
        listener.echoed.clear()
        if self.cfg.trigger == "http":
            await self.post(body, count_errors=False)  # also warms the API path up
        else:
            assert self.trigger_transport is not None
            self.trigger_transport.send(TEXT, body)
        try:
            await asyncio.wait_for(listener.echoed.wait(), 5)
            self.overhead = listener.echo_len - data_len
        except TimeoutError:
            self.overhead = 150  # not echoed to the sender: a typical envelope
        self.pad = pad_for(TARGET_MESSAGE_BYTES, self.overhead)

    async def connect(self) -> dict[str, Any]:
        cfg = self.cfg
        st = self.stats
        st.join_target = cfg.n
        st.all_joined.clear()
        factory_cls = DeflateRoomcastListener if cfg.deflate else LISTENERS[cfg.protocol]
        # minted before the clock starts
        headers = [self.headers(i, receiver=True) for i in range(cfg.n)]
        sem = asyncio.Semaphore(cfg.connect_concurrency)
        failures: list[str] = []

        async def one(i: int) -> None:
            listener = factory_cls(st)
            listener.index = i
            async with sem:
                for attempt in range(3):
                    try:
                        await ws_connect(
                            lambda: listener,
                            self.url(i),
                            extra_headers=headers[i],
                            websocket_handshake_timeout=cfg.handshake_timeout_s,
                        )
                        self.listeners.append(listener)
                        return
                    except Exception as exc:  # reported, retried
                        if attempt == 2:
                            failures.append(f"{type(exc).__name__}: {exc}")
                        await asyncio.sleep(0.2 * (attempt + 1))

        t0 = time.perf_counter()
        tasks = [asyncio.ensure_future(one(i)) for i in range(cfg.n)]
        await asyncio.gather(*tasks)
        handshakes_s = time.perf_counter() - t0
        st.join_target = len(self.listeners)
        if st.joined >= st.join_target:
            st.all_joined.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(st.all_joined.wait(), cfg.join_deadline_s)
        joined_s = time.perf_counter() - t0
        return {
            "connected": len(self.listeners),
            "joined": st.joined,
            "failures": len(failures),
            "failure_sample": failures[:3],
            "handshakes_s": handshakes_s,
            "connect_s": joined_s,
            "errors": st.errors,
            "error_sample": st.error_sample,
            "deflate_negotiated": st.negotiated,
        }

    async def reconnect(self, server_pids: list[int]) -> dict[str, Any]:
        """Every client again, with ``?recover=1`` and its positions (after a restart)."""
        cfg = self.cfg
        cfg.server_pids = server_pids or cfg.server_pids
        trigger = self.trigger_listener
        room_position = position(trigger.last_message) if trigger and trigger.last_message \
            else None
        old = self.listeners
        messages = [recover_message(lst, room_position) for lst in old]
        rooms = [len(json.loads(m)["data"]["positions"]) for m in messages]
        headers = [self.headers(lst.index) for lst in old]
        storm = Storm(sum(1 for r in rooms if r))
        sem = asyncio.Semaphore(cfg.connect_concurrency)
        failures: list[str] = []

        listeners: list[RecoverListener] = []

        async def one(i: int) -> None:
            listener = RecoverListener(storm, messages[i], rooms[i])
            listeners.append(listener)
            url = self.url(old[i].index)
            url += ("&" if "?" in url else "?") + "recover=1"
            async with sem:
                for attempt in range(3):
                    try:
                        await ws_connect(lambda: listener, url, extra_headers=headers[i],
                                         websocket_handshake_timeout=cfg.handshake_timeout_s)
                        return
                    except Exception as exc:  # reported, retried
                        if attempt == 2:
                            failures.append(f"{type(exc).__name__}: {exc}")
                        await asyncio.sleep(0.2 * (attempt + 1))

        a = self.cpu_sample()
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(len(old))))
        handshakes_s = time.perf_counter() - t0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(storm.done.wait(), cfg.join_deadline_s)
        answered_s = time.perf_counter() - t0
        out = {
            "clients": len(old),
            "answered": storm.answered,
            "rooms_recovered": storm.recovered,
            "rooms_not_recovered": storm.not_recovered,
            "failures": len(failures),
            "failure_sample": failures[:3],
            "handshakes_s": handshakes_s,
            "reconnect_s": answered_s,
            "room_position": room_position,
            "unanswered_sample": [
                {"sent": lst.recover.decode(), "left": lst.left,
                 "seen": [f.decode(errors="replace") for f in lst.seen]}
                for lst in listeners if lst.left > 0][:2],
        }
        out.update(self.cpu_delta(a, self.cpu_sample()))
        return out

    async def settle(
        self, quiet_s: float = 0.5, idle_cpu: float = 0.05, deadline_s: float = 60.0
    ) -> dict[str, Any]:
        """Wait until no frame arrived and the servers used < 5% CPU for ``quiet_s``."""
        st = self.stats
        t0 = time.perf_counter()
        frames0 = st.frames
        settled = False
        while time.perf_counter() - t0 < deadline_s:
            before_frames = st.frames
            a = self.cpu_sample()
            await asyncio.sleep(quiet_s)
            b = self.cpu_sample()
            busy = (b["server"] - a["server"] + b["aux"] - a["aux"]) / quiet_s
            if st.frames == before_frames and busy < idle_cpu:
                settled = True
                break
        return {
            "settled": settled,
            "settle_s": time.perf_counter() - t0,
            "frames": st.frames - frames0,
        }

    async def post(self, body: bytes, count_errors: bool = True) -> None:
        assert self.session is not None
        try:
            async with self.session.post(self.cfg.http_url, data=body) as resp:
                text = await resp.read()
                if resp.status >= 300 and count_errors:
                    self.http_errors += 1
                    if not self.http_error_sample:
                        self.http_error_sample = f"{resp.status} {text[:200]!r}"
        except aiohttp.ClientError as exc:
            if count_errors:
                self.http_errors += 1
                self.http_error_sample = self.http_error_sample or repr(exc)

    async def publish_burst(self, m: int) -> int:
        """Send M messages as fast as the trigger allows; the ts of the first one."""
        first_ts = time_ns()
        if self.cfg.trigger == "http":
            seqs = iter(range(m))

            async def worker() -> None:
                for seq in seqs:
                    await self.post(self.message(seq))

            await asyncio.gather(*(worker() for _ in range(self.cfg.http_concurrency)))
        else:
            transport = self.trigger_transport
            assert transport is not None
            for seq in range(m):
                transport.send(TEXT, self.message(seq))
        return first_ts

    async def wait_deliveries(self, deadline_s: float) -> bool:
        st = self.stats
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        last_n, last_change = len(st.lat), loop.time()
        while not st.done.is_set():
            now = loop.time()
            if now >= end:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(st.done.wait(), min(0.5, end - now))
            n = len(st.lat)
            if n != last_n:
                last_n, last_change = n, loop.time()
            elif loop.time() - last_change > self.cfg.stall_s:
                return False
        return True

    def latency_summary(self, lat: array.array[int]) -> dict[str, Any]:
        values = sorted(lat)
        return {
            "p50_ms": percentile(values, 0.50) / 1e6,
            "p99_ms": percentile(values, 0.99) / 1e6,
            "max_ms": (values[-1] / 1e6) if values else math.nan,
        }

    def per_connection(self, before: list[int], expected_each: int) -> dict[str, Any]:
        counts = [lst.count - b for lst, b in zip(self.listeners, before, strict=True)]
        return {
            "min_per_conn": min(counts) if counts else 0,
            "max_per_conn": max(counts) if counts else 0,
            "short_conns": sum(1 for c in counts if c < expected_each),
        }

    async def burst(self, m: int) -> dict[str, Any]:
        st = self.stats
        n = len(self.listeners)
        expected = n * m
        before = [lst.count for lst in self.listeners]
        errors0, http0 = st.errors, self.http_errors
        # generous: 1,000 deliveries/s is 5x below the slowest stack measured
        deadline = 20.0 + expected / 1000.0
        a = self.cpu_sample()
        st.start_phase(expected)
        first_ts = await self.publish_burst(m)
        sent_s = (time_ns() - first_ts) / 1e9
        complete = await self.wait_deliveries(deadline)
        b = self.cpu_sample()
        delivered = len(st.lat)
        window_s = (st.last_rx - first_ts) / 1e9 if delivered else math.nan
        out: dict[str, Any] = {
            "m": m,
            "n": n,
            "expected": expected,
            "delivered": delivered,
            "delivered_pct": 100.0 * delivered / expected if expected else math.nan,
            "complete": complete,
            "window_s": window_s,
            "publish_s": sent_s,
            "deliveries_per_s": delivered / window_s if delivered else 0.0,
            "avg_frame_bytes": st.nbytes / delivered if delivered else math.nan,
            "compressed_pct": 100.0 * st.compressed / delivered if delivered else math.nan,
            "compressed_wire_bytes": st.wire / st.compressed if st.compressed else math.nan,
            "stale": st.stale,
            "other_frames": st.other,
            "errors": st.errors - errors0,
            "error_sample": st.error_sample,
            "http_errors": self.http_errors - http0,
            "http_error_sample": self.http_error_sample,
            "disconnected": st.disconnected,
        }
        out.update(self.cpu_delta(a, b))
        srv = out["server_cpu_s"]
        out["server_us_per_delivery"] = 1e6 * srv / delivered if delivered else math.nan
        out["aux_us_per_delivery"] = 1e6 * out["aux_cpu_s"] / delivered if delivered else math.nan
        written = out["server_written_bytes"]
        out["server_bytes_per_delivery"] = written / delivered if delivered else math.nan
        writes = out["server_writes"]
        out["server_writes_per_delivery"] = writes / delivered if delivered else math.nan
        # Whole server core, kernel work (softirq of the loopback) included.
        core0 = out["core_busy_pct"][0] / 100 * out["cpu_window_s"]
        out["core0_us_per_delivery"] = 1e6 * core0 / delivered if delivered else math.nan
        out.update(self.latency_summary(st.lat))
        out.update(self.per_connection(before, m))
        st.target = 1 << 62
        return out

    async def paced(self, count: int, rate: float) -> dict[str, Any]:
        st = self.stats
        n = len(self.listeners)
        expected = n * count
        loop = asyncio.get_running_loop()
        st.start_phase(expected)
        a = self.cpu_sample()
        t0 = loop.time()
        for seq in range(count):
            delay = t0 + seq / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.cfg.trigger == "http":
                await self.post(self.message(seq))
            else:
                assert self.trigger_transport is not None
                self.trigger_transport.send(TEXT, self.message(seq))
        complete = await self.wait_deliveries(20.0 + expected / 1000.0)
        b = self.cpu_sample()
        delivered = len(st.lat)
        out: dict[str, Any] = {
            "count": count,
            "rate": rate,
            "expected": expected,
            "delivered": delivered,
            "delivered_pct": 100.0 * delivered / expected if expected else math.nan,
            "complete": complete,
            "server_us_per_delivery": 1e6 * (b["server"] - a["server"]) / delivered
            if delivered
            else math.nan,
            "server_writes_per_delivery": (b["writes"] - a["writes"]) / delivered
            if delivered
            else math.nan,
        }
        out.update(self.latency_summary(st.lat))
        st.target = 1 << 62
        return out


    async def sequential(self, count: int) -> dict[str, Any]:
        """One message at a time: each is published once the previous reached everyone."""
        st = self.stats
        n = len(self.listeners)
        st.start_phase(n)
        t0 = time.perf_counter()
        complete = True
        for seq in range(count):
            st.target = (seq + 1) * n
            st.done.clear()
            if self.cfg.trigger == "http":
                await self.post(self.message(seq))
            else:
                assert self.trigger_transport is not None
                self.trigger_transport.send(TEXT, self.message(seq))
            if not await self.wait_deliveries(60.0 + n / 100.0):
                complete = False
                break
        delivered = len(st.lat)
        st.target = 1 << 62
        return {
            "count": count,
            "n": n,
            "expected": n * count,
            "delivered": delivered,
            "complete": complete,
            "elapsed_s": time.perf_counter() - t0,
        }


class RecoverListener(WSListener):
    """A reconnecting client: sends its positions, waits for a recovery answer per room."""

    def __init__(self, storm: Storm, recover: bytes, rooms: int) -> None:
        super().__init__()
        self.storm = storm
        self.recover = recover
        self.left = rooms
        self.seen: list[bytes] = []  # the frames before the answers (for a failure sample)

    def on_ws_connected(self, transport: WSTransport) -> None:
        transport.send(TEXT, self.recover)  # buffered by the server until after its welcome

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not TEXT or self.left <= 0:
            return
        payload = frame.get_payload_as_bytes()
        if b'"room_joined"' not in payload or b'"recovered"' not in payload:
            if len(self.seen) < 6:
                self.seen.append(payload[:300])
            return
        storm = self.storm
        if b'"recovered":true' in payload:
            storm.recovered += 1
        else:
            storm.not_recovered += 1
        self.left -= 1
        if self.left == 0:
            storm.answered += 1
            if storm.answered >= storm.target:
                storm.done.set()


class Storm:
    """Progress of a reconnect storm."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.answered = 0
        self.recovered = 0
        self.not_recovered = 0
        self.done = asyncio.Event()


def position(payload: bytes) -> tuple[str, dict[str, Any]] | None:
    """(room, {epoch, offset}) of a room_joined or stored publication, if it has one."""
    msg = json.loads(payload)
    data = msg.get("data") if msg.get("type") == "room_joined" else msg
    if not isinstance(data, dict) or "epoch" not in data:
        return None
    return str(msg.get("room")), {"epoch": data["epoch"], "offset": data["offset"]}


def recover_message(listener: Listener, room_position: tuple[str, dict[str, Any]] | None) -> bytes:
    """The ``recover`` system message with a client's positions (its room_joined ones,
    the benchmark room's at its latest publication)."""
    positions: dict[str, Any] = {}
    for frame in getattr(listener, "join_frames", []):
        found = position(frame)
        if found is not None:
            positions[found[0]] = found[1]
    if room_position is not None:
        positions[room_position[0]] = room_position[1]
    return json.dumps({"type": "system", "id": "r", "data": {
        "action": "recover", "positions": positions}}).encode()


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event, default=str) + "\n")
    sys.stdout.flush()


async def serve(cfg: Config) -> None:
    gen = Generator(cfg)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
        "warmup": lambda c: gen.warmup(),
        "connect": lambda c: gen.connect(),
        "settle": lambda c: gen.settle(deadline_s=float(c.get("deadline_s", 60.0))),
        "burst": lambda c: gen.burst(int(c["m"])),
        "paced": lambda c: gen.paced(int(c["count"]), float(c.get("rate", 5.0))),
        "sequential": lambda c: gen.sequential(int(c["count"])),
        "reconnect": lambda c: gen.reconnect([int(p) for p in c.get("server_pids", [])]),
    }
    while True:
        line = await reader.readline()
        if not line:
            return
        cmd = json.loads(line)
        name = cmd["cmd"]
        if name == "quit":
            emit({"event": "quit"})
            return
        try:
            result = await handlers[name](cmd)
            emit({"event": name, **result})
        except Exception as exc:  # reported to the runner
            emit({"event": name, "error": f"{type(exc).__name__}: {exc}"})


def main() -> None:
    cfg = Config(**json.loads(sys.argv[1]))
    uvloop.run(serve(cfg))
    sys.stdout.flush()
    # 10,000 polite closes would take longer than the run: let the kernel reset them.
    os._exit(0)


if __name__ == "__main__":
    main()
