"""The WebSocket endpoint: handshake checks, then the read loop of one connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, cast

from aiohttp import WSCloseCode, WSMessage, WSMsgType, web
from aiohttp.abc import AbstractStreamWriter

from roomcast import metrics
from roomcast.auth import Claims, authenticate, origin_allowed, token_candidates
from roomcast.auth.claims import shared_set
from roomcast.auth.reasons import describe
from roomcast.exceptions import AuthError, ProtocolError, StoreError
from roomcast.hub import LocalConnection
from roomcast.logs import Throttled, log_event
from roomcast.membership.base import Group
from roomcast.protocol import messages
from roomcast.protocol.codes import CloseCode, ErrorCode
from roomcast.protocol.envelope import parse_client_message
from roomcast.protocol.frames import PING_FRAME
from roomcast.protocol.lenient import recover_id
from roomcast.server.admin.problems import api_paths, http_problem, problem_response
from roomcast.server.guard import half_close
from roomcast.server.proxy import client_ip
from roomcast.server.recover_frame import read_recover, wants_recovery
from roomcast.server.state import Gateway, gateway
from roomcast.session import Session
from roomcast.throttle import Throttle
from roomcast.types import ConnId, GroupId
from roomcast.writer import ConnectionWriter, fan_out

_log = logging.getLogger("roomcast.websocket")
#: A refusal, or the coroutine that serves an opened connection until it closes.
_Opened = web.StreamResponse | Coroutine[Any, Any, web.StreamResponse]
#: Refusals a client can cause at will are logged throttled.
_refusals = Throttled(_log, "handshake_refused_limit")
#: ``handshake_refused`` lines by reason (a fixed set): anyone can cause them at will, so
#: each reason logs at most 10 lines per 10 s, the next one counting what was left out.
_refused_lines: dict[str, Throttled] = {}


def _log_refused(reason: str, level: int, **fields: Any) -> None:
    throttled = _refused_lines.get(reason)
    if throttled is None:
        throttled = _refused_lines[reason] = Throttled(_log, "handshake_refused", level,
                                                        burst=10)
    throttled(time.monotonic(), reason=reason, **fields)


def own_origin(request: web.Request) -> str:
    """The origin this request was addressed to (same-origin pages are always allowed).

    Behind a trusted proxy, scheme and host are the client's (see server/proxy.py).
    """
    return f"{request.scheme}://{request.host}".lower()


async def websocket_endpoint(request: web.Request) -> web.StreamResponse:
    """``GET /websocket/connect``: authenticate, upgrade, serve until closed."""
    gw = gateway(request)
    # Before any work: one address cannot hold every descriptor or CPU of the instance.
    try:
        ip = client_ip(request) or "unknown"
        if not gw.per_ip.acquire(ip):
            return _too_many(request, "per_ip")
        try:
            opened = await _handshake(request, gw)
            if isinstance(opened, web.StreamResponse):
                return opened
            # The serving coroutine, awaited once the handshake's frames (and their token,
            # claims and groups) are gone: they are not kept for the connection's life.
            return await opened
        finally:
            gw.per_ip.release(ip)
    except web.HTTPException as exc:  # e.g. a bad upgrade request, from aiohttp
        return http_problem(exc, request, api_paths(gw.settings.api_prefix))
    finally:
        # What the app's middlewares do for other routes (they pass this one through).
        gw.guard.finished(request.transport)
        gw.guard.next_request(request.transport)


def _too_many(request: web.Request, reason: str) -> web.StreamResponse:
    metrics.CONNECTIONS_REFUSED.labels(reason).inc()
    metrics.HANDSHAKE_REFUSALS.labels(reason).inc()
    _refusals(asyncio.get_running_loop().time(), reason=reason, peer=client_ip(request))
    return problem_response(429, "too many connections", code="rate_limited", reason=reason,
                            headers={"Retry-After": "10"}, request=request)


def _valid_close_code(code: int) -> bool:
    """Whether a client may send this close code (RFC 6455 section 7.4, IANA registry)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


class _Socket(web.WebSocketResponse):
    """aiohttp's server WebSocket, closing with the code RFC 6455 asks for where aiohttp
    sends 1000: the client's own code in answer to its close (1002 for a code no
    endpoint may send), and 1002 after a frame it could not read that is no framing
    error of its own (a compressed frame that does not inflate). Its ``close_code`` is
    the code it sent, where aiohttp's is the client's answer (1006 when none came)."""

    _sent: int | None = None
    _transport: asyncio.BaseTransport | None = None

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter:
        self._transport = request.transport
        return await super().prepare(request)

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"",
                    drain: bool = True) -> bool:
        transport = self._transport
        # A socket already gone (a reset) is left to aiohttp: its close fails, as 1006.
        if not self.closed and transport is not None and not transport.is_closing():
            if code == WSCloseCode.OK:
                code, message = self._instead_of_1000(message)
            self._sent = code
        return await super().close(code=code, message=message, drain=drain)

    def _instead_of_1000(self, message: bytes) -> tuple[int, bytes]:
        if self.exception() is not None:
            return WSCloseCode.PROTOCOL_ERROR, b"undecodable frame"
        # The client's, when answering its close: a 1006 is the client's too (aiohttp's
        # own comes with an exception).
        peer = super().close_code
        if not peer:  # none, or a close frame without a code
            return WSCloseCode.OK, message
        if _valid_close_code(peer):
            return peer, message
        return WSCloseCode.PROTOCOL_ERROR, b"invalid close code"

    @property
    def close_code(self) -> int | None:
        return self._sent or super().close_code


async def _handshake(request: web.Request, gw: Gateway) -> _Opened:
    """The refusal of the request, or the coroutine that serves its connection."""
    started = time.perf_counter()
    if gw.closing:
        return problem_response(503, "shutting down", code="unavailable", request=request)
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(origin, gw.settings.allowed_origins,
                                                 own_origin(request)):
        metrics.AUTH_FAILURES.labels("origin").inc()
        metrics.HANDSHAKE_REFUSALS.labels("origin").inc()
        _log_refused("origin", logging.WARNING, origin=origin, peer=client_ip(request))
        return problem_response(403, "origin not allowed", code="forbidden", reason="origin",
                                request=request)
    try:
        claims = (
            # aiohttp parses cookies on first access, even from no Cookie header at all.
            await authenticate(token_candidates(
                request.headers, request.cookies if "Cookie" in request.headers else {}),
                gw.verifier)
        ).claims
    except AuthError as exc:
        metrics.AUTH_FAILURES.labels(exc.reason).inc()
        metrics.HANDSHAKE_REFUSALS.labels(exc.reason).inc()
        _log_refused(exc.reason, logging.INFO, peer=client_ip(request))
        return problem_response(
            401,
            "missing or invalid credentials",
            code="unauthorized",
            reason=exc.reason,
            headers={"WWW-Authenticate": 'Bearer realm="roomcast"'},
            request=request,
        )
    # Who is asking (the token, its revocation) before what they ask for, as the Go
    # gateway answers a plain GET without a token 401; but a request that cannot become a
    # WebSocket costs no membership lookup and holds no slot of the user's.
    refused = await _denied(request, gw, claims)
    if refused is None:  # not ``or``: a response is a mapping, false while empty
        refused = _upgrade_refused(request)
    if refused is not None:
        return refused
    return await _open(request, gw, claims, started)


def _upgrade_refused(request: web.Request) -> web.Response | None:
    """The 426 of a request that asks for no WebSocket, or for another version than 13.

    aiohttp's own checks (the ``Connection`` header, the key) still run in ``prepare``:
    these two are the cheap ones that catch a plain GET and an old client.
    """
    if request.headers.get("Upgrade", "").strip().lower() != "websocket":
        return _not_an_upgrade(request)
    version = request.headers.get("Sec-WebSocket-Version")
    if version is not None and version.strip() != "13":
        # aiohttp also takes the drafts' 8; RFC 6455 names the version it speaks.
        return problem_response(426, "unsupported WebSocket version; use 13",
                                code="upgrade_required",
                                headers={"Upgrade": "websocket", "Sec-WebSocket-Version": "13"},
                                request=request)
    return None


def _not_an_upgrade(request: web.Request) -> web.Response:
    return problem_response(426, "expected a WebSocket upgrade", code="upgrade_required",
                            headers={"Upgrade": "websocket"}, request=request)


async def _open(request: web.Request, gw: Gateway, claims: Claims, started: float) -> _Opened:
    """Upgrade an authenticated request and open its connection; the refusal, or the
    coroutine that serves the connection (it then holds the user's slot and frees it)."""
    if not gw.per_user.acquire(claims.user_id):
        return _too_many(request, "per_user")
    conn: LocalConnection | None = None
    serving: Coroutine[Any, Any, web.StreamResponse] | None = None
    reason = "closed by client"
    try:
        # Held from reading the groups until the connection is in its rooms: a membership
        # change meanwhile is applied after, to the complete connection (never lost).
        async with gw.node.user_lock(claims.user_id):
            try:
                async with asyncio.timeout(gw.settings.store_timeout):
                    groups = await gw.node.entitled_groups(claims.user_id, claims.groups)
            except (StoreError, TimeoutError) as exc:
                log_event(_log, "membership_store_failed", logging.ERROR,
                          error=str(exc) or "timed out")
                metrics.HANDSHAKE_REFUSALS.labels("unavailable").inc()
                return problem_response(503, "membership store unavailable",
                                        code="unavailable", request=request)
            ws = _Socket(
                autoping=False,
                heartbeat=None,
                # permessage-deflate when enabled and offered; aiohttp negotiates it and
                # decompresses what clients send, and our writer sends compressed frames
                # made once per message (hub.py). aiohttp itself sends only control frames.
                compress=gw.settings.permessage_deflate,
                # Our own size check answers with an error and keeps the socket; aiohttp's
                # hard limit (twice ours) closes with 1009 before a huge frame is buffered.
                max_msg_size=2 * gw.settings.max_message_size,
                timeout=2.0,
            )
            try:
                # Only its handshake checks raise (the rest of them: a malformed key).
                await ws.prepare(request)
            except web.HTTPException:
                return _not_an_upgrade(request)
            conn = _connection(request, gw, claims, groups, ws)
            gw.guard.watch_frames(request.transport, gw.settings.fragment_timeout, conn)
            recover, first = None, None
            recovering = wants_recovery(request)
            if recovering:
                # The welcome first (clients wait for it), then the positions, then rooms.
                gw.node.welcome(conn)
                recover, first = await read_recover(
                    ws, wait=gw.settings.recover_wait, max_size=gw.settings.max_message_size
                )
            await gw.node.open_connection(conn, recover, welcomed=recovering)
        gw.guard.finished(request.transport)
        metrics.HANDSHAKE_SECONDS.observe(time.perf_counter() - started)
        log_event(
            _log,
            "connect",
            conn=conn.id,
            user=conn.user_id,
            peer=client_ip(request),
            rooms=len(conn.rooms),
        )
        serving = _serve(
            ws,
            Session(gw.node, conn,
                    Throttle(gw.settings.client_rate, gw.settings.client_burst,
                             close_after=gw.settings.flood_close),
                    refresher=gw.refresher, max_members=gw.settings.max_members_listed),
            gw,
            first,
        )
        return serving
    except Exception:
        if conn is None:
            raise
        reason = "internal error"
        await _failed(conn)
        return ws
    finally:
        if serving is None:
            if conn is not None:
                await _closed(ws, conn, gw, reason)
            gw.per_user.release(claims.user_id)


async def _serve(ws: web.WebSocketResponse, session: Session, gw: Gateway,
                 first: WSMessage | None) -> web.StreamResponse:
    """Handle frames (``first``, already read, then the socket's) until the socket
    closes, then close the connection everywhere and free its user's slot.

    One frame, with the endpoint's, for the connection's whole life (each frame costs
    a few hundred bytes of every idle connection).
    """
    conn = session.conn
    reason = "closed by client"
    try:
        loop = asyncio.get_running_loop()
        max_size = gw.settings.max_message_size
        # One member's burst of large frames reaches every member of a room: frames are
        # also counted by size, or a burst within the frame allowance could push a room's
        # members on slower links past their write queues (closed as slow consumers).
        frame_bytes = gw.settings.client_frame_bytes
        throttle = session.limiter
        msg, first = first, None
        while True:
            if msg is None:
                # ws.receive(), not ``async for`` over a generator: its frame would stay
                # for the connection's whole life.
                msg = await ws.receive()
                if msg.type in _ENDED:
                    break
            conn.last_seen = loop.time()
            if msg.type is not WSMsgType.PONG:
                conn.last_spoke = conn.last_seen
            # Over its rate the connection is not read (nor answered) for a while.
            if msg.type in _COUNTED and not await throttle.admit():
                reason = await _flooding(conn)
                break
            if frame_bytes and msg.type in _SIZED and len(msg.data) > frame_bytes:
                throttle.charge(len(msg.data) // frame_bytes)
            if msg.type is WSMsgType.TEXT:
                try:
                    command = parse_client_message(msg.data, max_size=max_size)
                except ProtocolError as exc:
                    session.reject(exc)
                    msg = None
                    continue
                await session.handle(command)
                # Not kept while the connection idles (a publication's whole payload).
                del command
            elif msg.type is WSMsgType.BINARY:
                binary = ProtocolError(
                    ErrorCode.BINARY_NOT_SUPPORTED,
                    "binary frames are not supported; send JSON text",
                )
                binary.message_id = recover_id(msg.data)  # a reply the client can match
                session.reject(binary)
            elif msg.type is WSMsgType.PING:
                # Not once the connection is closing: after the guard's half-close (a
                # violation) a pong would be written into a socket shut for writing.
                if not conn.writer.closed:
                    await ws.pong(msg.data)
            elif msg.type is WSMsgType.ERROR:
                # aiohttp closed the socket: a frame over its hard size limit (1009), or
                # one RFC 6455 forbids (1002) or that is not UTF-8 text (1007).
                too_big = getattr(msg.data, "code", None) == WSCloseCode.MESSAGE_TOO_BIG
                metrics.REJECTED.labels(
                    str(ErrorCode.TOO_LARGE) if too_big else MALFORMED_FRAME).inc()
                reason = f"protocol error: {msg.data}"
                break
            msg = None
    except Exception:
        reason = "internal error"
        await _failed(conn)
    finally:
        await _closed(ws, conn, gw, reason)
        gw.per_user.release(conn.user_id)
    return ws


async def _failed(conn: LocalConnection) -> None:
    """Log an unexpected error of an open connection and close it with 1011."""
    log_event(_log, "connection_failed", logging.ERROR, conn=conn.id, exc_info=True)
    conn.close(CloseCode.INTERNAL_ERROR, "internal error")
    # Send the 1011 before returning: aiohttp closes a returned socket with 1000 at once.
    if conn.closer is not None:
        await conn.closer.wait()


async def _closed(ws: web.WebSocketResponse, conn: LocalConnection, gw: Gateway,
                  reason: str) -> None:
    """Take a connection that ended out of the node, and log why it ended."""
    conn.writer.close(flush=False)
    _forget_traceback(ws.exception())
    await gw.node.close_connection(conn)
    closer = conn.closer
    ours = closer if isinstance(closer, _Closer) else None
    log_event(
        _log,
        "disconnect",
        conn=conn.id,
        user=conn.user_id,
        reason=(ours.reason if ours is not None else None) or reason,
        # The code our closer closed with, else the one the socket sent (the client's
        # own in answer to its close).
        code=ours.code if ours is not None and ours.code is not None else ws.close_code,
    )


def _forget_traceback(exc: BaseException | None) -> None:
    """Drop the tracebacks of the error that ended a socket, and of those before it.

    aiohttp keeps that error on the response (a peer gone before our close frame was
    written: a reset, after the end of its stream), and the frames of its traceback
    hold the response: a cycle that kept each such closed connection until the
    collector's next full pass. Nothing reads those tracebacks.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.__traceback__ = None
        exc = exc.__cause__ or exc.__context__


async def _denied(request: web.Request, gw: Gateway, claims: Claims) -> web.Response | None:
    """The refusal of a revoked token or a kicked user or token, else None."""
    try:
        # Bounded: a Redis that hangs (not down) must not hold the handshake for long.
        async with asyncio.timeout(gw.settings.store_timeout):
            denied = await gw.node.denials.check(claims)
    except (StoreError, TimeoutError) as exc:
        log_event(_log, "denial_store_failed", logging.ERROR, error=str(exc) or "timed out")
        metrics.HANDSHAKE_REFUSALS.labels("unavailable").inc()
        return problem_response(503, "revocation store unavailable", code="unavailable",
                                headers={"Retry-After": "1"}, request=request)
    if denied is None:
        return None
    metrics.AUTH_FAILURES.labels(denied.reason).inc()
    metrics.HANDSHAKE_REFUSALS.labels(denied.reason).inc()
    _log_refused(denied.reason, logging.INFO, user=claims.user_id, peer=client_ip(request))
    if denied.retry_after is None:  # revoked: this token is no good, a new one is
        return problem_response(401, describe(denied.reason), code="unauthorized",
                                reason=denied.reason,
                                headers={"WWW-Authenticate": 'Bearer realm="roomcast"'},
                                request=request)
    wait = str(max(1, math.ceil(denied.retry_after)))
    return problem_response(403, f"{describe(denied.reason)} (in {wait} s)", code="forbidden",
                            reason=denied.reason, headers={"Retry-After": wait},
                            request=request)


def _connection(
    request: web.Request,
    gw: Gateway,
    claims: Claims,
    groups: list[Group],
    ws: web.WebSocketResponse,
) -> LocalConnection:
    """The hub's record of a just-upgraded socket, with its writer and closer."""
    transport = request.transport
    assert transport is not None
    conn = LocalConnection(
        id=ConnId(messages.new_id()),
        user_id=claims.user_id,
        character_id=claims.character_id,
        character_name=claims.character_name,
        scopes=claims.scopes,
        created_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        writer=ConnectionWriter(transport, gw.flusher, max_bytes=gw.settings.max_queue_bytes),
        groups={g.id: g for g in groups},
        token_groups=cast(frozenset[GroupId], shared_set(tuple(g.id for g in claims.groups))),
        expires_at=claims.expires_at,
        issued_at=claims.issued_at,
        token_id=claims.token_id,
        last_seen=asyncio.get_running_loop().time(),
        deflate=int(ws.compress or 0),
    )
    closer = _Closer(ws, conn, transport, grace=gw.settings.ping_timeout)
    conn.closer = closer
    conn.writer.on_overflow = closer.slow_consumer
    return conn


#: The ``roomcast_messages_rejected`` label of a frame the WebSocket layer refused.
MALFORMED_FRAME = "malformed_frame"
_COUNTED = (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.PING)
_SIZED = (WSMsgType.TEXT, WSMsgType.BINARY)
#: What ends ``async for msg in ws`` in aiohttp.
_ENDED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)


async def _flooding(conn: LocalConnection) -> str:
    """Close a connection that stayed over its rate limit (1008)."""
    metrics.CONNECTIONS_REFUSED.labels("flooding").inc()
    log_event(_log, "flood_closed", logging.WARNING, conn=conn.id, user=conn.user_id)
    conn.close(CloseCode.POLICY_VIOLATION, "rate limit exceeded")
    if conn.closer is not None:
        await conn.closer.wait()
    return "rate limit exceeded"


class _Closer:
    """Closes one connection once, off the broadcast path."""

    # Not the connection itself: the connection holds its closer, and a cycle between
    # them would keep every closed connection (its socket objects and buffers) until the
    # collector's next full pass instead of freeing it when its handler returns.
    __slots__ = ("_conn_id", "_grace", "_task", "_transport", "_user_id", "_writer", "_ws",
                 "code", "reason")

    def __init__(
        self,
        ws: web.WebSocketResponse,
        conn: LocalConnection,
        transport: asyncio.Transport,
        *,
        grace: float,
    ) -> None:
        self._ws = ws
        self._conn_id = conn.id
        self._user_id = conn.user_id
        self._writer = conn.writer
        self._transport = transport
        self._grace = grace
        self._task: asyncio.Task[None] | None = None
        self.reason: str | None = None
        self.code: int | None = None

    def __call__(self, code: int, reason: str) -> None:
        # A code set without a task: the guard half-closed the socket for a violation.
        if self._task is not None or self.code is not None or self._ws.closed:
            return
        self.reason = reason
        self.code = code
        self._task = asyncio.get_running_loop().create_task(self._close(code, reason))

    def slow_consumer(self) -> None:
        metrics.SLOW_CONSUMERS.inc()
        log_event(
            _log, "slow_consumer", logging.WARNING, conn=self._conn_id, user=self._user_id
        )
        self(CloseCode.SLOW_CONSUMER, "slow consumer")

    async def wait(self) -> None:
        """Until the close frame is written and the close handshake is over or given up."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _close(self, code: int, reason: str) -> None:
        # A slow consumer's backlog is dropped; everyone else gets what was queued first.
        slow = code == CloseCode.SLOW_CONSUMER
        self._writer.close(flush=not slow)
        if slow and self._transport.get_write_buffer_size() > 0:
            # Its socket is full: the close frame would queue behind what it does not
            # read, pinning that buffer and the descriptor until the liveness timeout.
            # Cut it now (the client sees an abnormal closure and reconnects).
            self._transport.abort()
            return
        if code == CloseCode.POLICY_VIOLATION:
            # A flooder's unread frames would all be read and parsed while waiting for its
            # close reply: send ours and stop reading instead.
            half_close(self._transport, code, reason)
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self._ws.close(code=code, message=reason.encode(), drain=False), 3.0
            )
        # The transport now closes gracefully, sending what it holds (the close frame
        # last); a peer that never reads must not pin that buffer forever.
        asyncio.get_running_loop().call_later(self._grace, self._abort_if_stuck)

    def _abort_if_stuck(self) -> None:
        if self._transport.get_write_buffer_size() > 0 or not self._transport.is_closing():
            self._transport.abort()


async def liveness(gw: Gateway) -> None:
    """Each interval, ping the connections that sent nothing but pongs since the last
    pass, and close those silent past the timeout.

    A client heard from meanwhile is alive, and its link carries traffic: every SDK and
    the React client send a heartbeat each 30 s, and pinging them as well doubled the
    keep-alive traffic (and system calls) of every idle connection.
    """
    loop = asyncio.get_running_loop()
    interval = gw.settings.ping_interval
    while True:
        await asyncio.sleep(interval)
        _liveness_pass(gw, loop.time())


def _liveness_pass(gw: Gateway, now: float) -> None:
    # A function of its own: the loop's locals (the last connection looked at, the
    # writers pinged) would otherwise keep a closed connection until the next pass
    # that finds any connection at all.
    deadline = now - gw.settings.ping_timeout
    heard = now - gw.settings.ping_interval
    quiet: list[ConnectionWriter] = []
    for conn in list(gw.node.hub.connections.values()):
        if conn.last_seen < deadline:
            conn.close(CloseCode.STALE, "no frame within the liveness timeout")
        elif conn.last_spoke < heard:
            quiet.append(conn.writer)
    # As one message to a room: written at once to idle sockets, queued behind what
    # the others have pending.
    fan_out(quiet, PING_FRAME)
