"""The reconnecting asyncio client of a roomcast (or Go) gateway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as _random
import ssl as _ssl
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.typing import Origin

from roomcast.client.backoff import Backoff, RandomSource
from roomcast.client.dispatch import Handler
from roomcast.client.errors import AuthRejected, ClientClosed, ClientError, ServerClosed
from roomcast.client.handshake import (
    Failure,
    HandshakeFailed,
    classify,
    credential_headers,
    refusal_reason,
)
from roomcast.client.inbound import ROOM_KEY, Inbound
from roomcast.client.message import InvalidFrame, Message
from roomcast.client.outbox import Outbox
from roomcast.client.positions import Position, Positions, Recovery, recover_url
from roomcast.client.queue import Overflow
from roomcast.client.room import Room, RoomDirectory
from roomcast.client.states import ConnectionState, StateCallback, StateTracker
from roomcast.client.stream import Stream
from roomcast.logs import log_event
from roomcast.protocol.codes import CloseCode

logger = logging.getLogger("roomcast.client")

TokenProvider = Callable[[], str | Awaitable[str]]
"""Returns a fresh token; called before every connection attempt."""
Sleep = Callable[[float], Awaitable[None]]


class Client:
    """A gateway connection that reconnects, queues while offline and matches replies.

    ``async with Client(url, token=...) as client:`` connects, and closes on exit.

    Args:
        url: ``ws(s)://host:port/websocket/connect``.
        token: a JWT sent as ``Authorization: Bearer``.
        token_provider: called (sync or async) before each connection attempt for a
            fresh JWT, sent as Bearer. After a 401/403 it is called once more; if that
            token is refused too, the client stops with :class:`AuthRejected`. It is
            also called when the gateway warns that the token expires soon
            (``token_expiring``): the new token is sent in-band (``system`` ``refresh``),
            so the connection lives on without a reconnect.
        cookie: a JWT sent as the ``falcon_auth_token`` cookie, as browsers do.
        headers: extra handshake headers.
        ssl: TLS context for ``wss://`` (default: the system's trust store).
        origin: ``Origin`` header, for gateways that check it.
        backoff: delays between reconnect attempts (1 s x 1.5, capped at 30 s).
        ack_timeout: default seconds to wait for a reply (the React client's: 10 s).
        heartbeat_interval: seconds between application pings; ``None`` disables them.
        heartbeat_timeout: a ping unanswered this long marks the connection dead.
        queue_limit, queue_overflow: size (200: the gateway's default burst) and overflow
            policy of the offline queue.
        inbox_limit: messages received but not yet handled before reading pauses.
        random, sleep: jitter source and reconnect-delay sleep, injectable for tests.
        on_state: callback for every state change.
        recover: on reconnect, hand the server the last position of each room so it
            replays what was missed (``on_recovery`` tells the outcome per room).
        positions: positions to start from (e.g. :attr:`positions` saved by a
            previous process), so the first connection recovers too.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        token_provider: TokenProvider | None = None,
        cookie: str | None = None,
        headers: Mapping[str, str] | None = None,
        ssl: _ssl.SSLContext | None = None,
        origin: str | None = None,
        backoff: Backoff | None = None,
        ack_timeout: float = 10.0,
        heartbeat_interval: float | None = 30.0,
        heartbeat_timeout: float = 10.0,
        queue_limit: int = 200,
        queue_overflow: Overflow = Overflow.RAISE,
        inbox_limit: int = 10_000,
        open_timeout: float = 10.0,
        max_size: int = 2**20,
        random: RandomSource = _random.random,
        sleep: Sleep = asyncio.sleep,
        on_state: StateCallback | None = None,
        recover: bool = True,
        positions: Mapping[str, Position] | None = None,
    ) -> None:
        if sum(x is not None for x in (token, token_provider, cookie)) > 1:
            raise ValueError("give at most one of token, token_provider, cookie")
        self.url = url
        self._token, self._token_provider, self._cookie = token, token_provider, cookie
        self._headers = dict(headers or {})
        self._ssl, self._origin = ssl, origin
        self._backoff = backoff or Backoff()
        #: Default seconds to wait for a reply.
        self.ack_timeout = ack_timeout
        self._heartbeat_interval, self._heartbeat_timeout = heartbeat_interval, heartbeat_timeout
        self._open_timeout, self._max_size = open_timeout, max_size
        self._random, self._sleep = random, sleep

        self._states = StateTracker()
        if on_state is not None:
            self._states.on_change(on_state)
        self._outbox = Outbox(queue_limit, queue_overflow)
        self._inbound = Inbound(inbox_limit)
        self._rooms = RoomDirectory(self)
        self._recover = recover
        self._positions = Positions(positions)
        self._ws: ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._refreshing: asyncio.Task[None] | None = None
        self._closing = False
        #: This connection's id, from the gateway's welcome message.
        self.connection_id: str | None = None
        #: The authenticated user's id, from the gateway's welcome message.
        self.user_id: str | None = None

    # -- state ------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """The current connection state."""
        return self._states.state

    @property
    def error(self) -> BaseException | None:
        """Why the client stopped, once the state is ``ERROR``."""
        return self._states.error

    def on_state(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback`` on every state change; returns an unregister function."""
        return self._states.on_change(callback)

    def states(self, maxsize: int = 64) -> Stream[ConnectionState]:
        """State changes from now on, as an async iterator ending with the client."""
        return self._states.stream(maxsize)

    async def wait_for(self, *states: ConnectionState) -> ConnectionState:
        """Wait until the state is one of ``states``; raises if the client stops first."""
        return await self._states.wait_for(*states)

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background (once)."""
        if self._tasks:
            return
        if self._states.finished:
            raise self._states.error or ClientClosed("client is closed")
        self._states.set(ConnectionState.CONNECTING)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run()), loop.create_task(self._inbound.run())]

    async def connect(self) -> Client:
        """Start, and wait for the first connection (transient failures are retried).

        Raises:
            AuthRejected: the credentials were refused.
            ClientError: another fatal error (also in :attr:`error`).
        """
        self.start()
        await self.wait_for(ConnectionState.CONNECTED)
        return self

    async def close(self) -> None:
        """Close the connection cleanly and stop; waiting sends fail with ClientClosed."""
        if self._closing:
            return
        self._closing = True
        if not self._states.finished:
            # First, so that sends awaiting a reply fail as closed, not as lost.
            self._stop(ClientClosed("client is closed"))
        if self._ws is not None:
            await self._ws.close()
        if self._refreshing is not None:
            self._refreshing.cancel()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if not self._states.finished:
            self._states.set(ConnectionState.DISCONNECTED)

    async def wait_closed(self) -> None:
        """Wait until the client stops; raises its fatal error if it failed."""
        await self._states.wait_for(ConnectionState.DISCONNECTED, ConnectionState.ERROR)
        if self._states.state is ConnectionState.ERROR and self._states.error is not None:
            raise self._states.error

    async def __aenter__(self) -> Client:
        try:
            return await self.connect()
        except BaseException:
            await self.close()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- receiving --------------------------------------------------------------------

    def on(self, type: str, handler: Handler[Message]) -> Callable[[], None]:
        """Call ``handler`` for every message of ``type`` (``"*"``: every message).

        Handlers may be sync or async; they run in arrival order, and one that raises
        is logged without stopping the others. Returns a function that unregisters it.
        """
        return self._inbound.on(type, handler)

    def on_room(self, room: str, handler: Handler[Message]) -> Callable[[], None]:
        """Call ``handler`` for every message whose envelope ``room`` is ``room``."""
        return self._inbound.on(ROOM_KEY + room, handler)

    def messages(self, *types: str, maxsize: int = 1000) -> Stream[Message]:
        """Messages from now on (all, or only ``types``), as an async iterator.

        Replies to this client's own messages are not included. A reader more than
        ``maxsize`` messages behind loses the oldest ones.
        """
        stream = self._inbound.stream(frozenset(types), maxsize)
        if self._states.finished:
            stream.end(self._states.error)
        return stream

    def on_recovery(
        self, handler: Handler[Recovery], *, room: str | None = None
    ) -> Callable[[], None]:
        """Call ``handler`` with each room's :class:`Recovery` (of ``room``, or every room).

        After a reconnect, each room the client was in gets one outcome, in order with
        its messages: ``recovered`` True when every missed publication was replayed,
        False when the app must reload the room's state (history expired, no history,
        the server lost the stream: a new epoch seen live is reported too).
        """
        return self._inbound.on_recovery("*" if room is None else room, handler)

    def position(self, room: str) -> Position | None:
        """The stream position of the last publication delivered in ``room``."""
        return self._positions.get(room)

    @property
    def positions(self) -> dict[str, Position]:
        """Every room's last position; pass it as ``positions=`` to resume elsewhere."""
        return self._positions.snapshot()

    @property
    def duplicates_dropped(self) -> int:
        """Publications dropped because they had been delivered already."""
        return self._positions.stats.duplicates

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms this connection is in now (empty while disconnected)."""
        return self._rooms.joined

    def room(self, name: str) -> Room:
        """The :class:`Room` named ``name`` (the same object every time)."""
        return self._rooms.get(name)

    def personal_room(self) -> Room:
        """The user's personal room ``user:<user_id>``, known once connected."""
        if self.user_id is None:
            raise ClientError("the personal room is known once connected")
        return self.room(f"user:{self.user_id}")

    # -- sending ----------------------------------------------------------------------

    async def send(
        self,
        type: str,
        data: Mapping[str, Any] | None = None,
        *,
        room: str | None = None,
        to: str | None = None,
        timeout: float | None = None,
    ) -> Message:
        """Send a message and return the server's reply to it (the ack).

        Offline, the message waits in the queue and is sent once, in order, after
        reconnecting. ``timeout`` (default :attr:`ack_timeout`) counts from the moment
        it is written to the socket; cancel the call to give up while it is queued.

        Raises:
            ServerError: the server answered with an ``error`` (see ``.code``).
            AckTimeout: sent, but no reply came in time.
            QueueFull: offline and the queue is full.
            ConnectionLost: sent, and the connection dropped before the reply.
            ClientClosed: the client is closed.
        """
        envelope: dict[str, Any] = {"type": type}
        if room is not None:
            envelope["room"] = room
        if to is not None:
            envelope["to"] = to
        envelope["data"] = dict(data or {})
        return await self.request(envelope, timeout=timeout)

    async def request(
        self, envelope: Mapping[str, Any], *, timeout: float | None = None
    ) -> Message:
        """Send a raw envelope (an ``id`` is added if missing); returns the reply."""
        return await self._outbox.request(
            envelope, self.ack_timeout if timeout is None else timeout
        )

    async def ping(self, *, timeout: float | None = None) -> Message:
        """The React client's heartbeat: a ``system`` ping, answered with the same id."""
        return await self.request({"type": "system", "data": {"action": "ping"}}, timeout=timeout)

    async def refresh_token(self, token: str, *, timeout: float | None = None) -> Message:
        """Hand the gateway a new token for this connection (``system`` ``refresh``).

        Its expiry, scopes and token groups replace the old ones at once.

        Raises:
            ServerError: refused (``code`` ``unauthorized``; the reply's ``data.reason``
                says why); the connection keeps its old token.
        """
        return await self.request(
            {"type": "system", "data": {"action": "refresh", "token": token}}, timeout=timeout
        )

    async def _auto_refresh(self) -> None:
        """The token provider's fresh token, sent in-band; failures are logged (the
        gateway closes with 3401 at expiry, and the reconnect asks the provider again)."""
        assert self._token_provider is not None
        try:
            result = self._token_provider()
            token = result if isinstance(result, str) else await result
            reply = await self.refresh_token(token)
        except Exception as exc:
            log_event(logger, "token_refresh_failed", logging.WARNING, error=_describe(exc))
            return
        log_event(logger, "token_refreshed", expires_at=reply.data.get("expires_at"))

    async def members(self, room: str, *, timeout: float | None = None) -> list[Any]:
        """The members of ``room`` as the server lists them."""
        reply = await self.request(
            {"type": "system", "data": {"action": "members", "room": room}}, timeout=timeout
        )
        members = reply.data.get("members")
        return list(members) if isinstance(members, list) else []

    @property
    def queued(self) -> int:
        """How many messages wait in the offline queue."""
        return len(self._outbox)

    # -- the connection loop ----------------------------------------------------------

    async def _run(self) -> None:
        delays: Iterator[float] | None = None
        refreshed = False
        try:
            while True:
                try:
                    ws = await self._open()
                except Exception as exc:
                    failure, status = classify(exc)
                    if failure is Failure.AUTH and status is not None:
                        if self._token_provider is None or refreshed:
                            raise AuthRejected(status, refusal_reason(exc)) from exc
                        # The token may just have expired: ask for a fresh one, once.
                        refreshed = True
                        log_event(logger, "auth_refused", logging.WARNING, status=status)
                        continue
                    if failure is Failure.FATAL:
                        if status is None:
                            raise
                        raise HandshakeFailed(status) from exc
                    log_event(logger, "connect_failed", error=_describe(exc))
                else:
                    refreshed = False
                    connected, code, reason = await self._serve(ws)
                    if self._closing:
                        return
                    if connected:
                        delays = None  # backoff starts over after a successful connection
                    if code is not None and not _reconnect_after(code):
                        raise ServerClosed(code, reason)
                self._states.set(ConnectionState.RECONNECTING)
                if delays is None:
                    delays = self._backoff.delays(self._random)
                await self._sleep(next(delays))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log_event(logger, "client_failed", logging.ERROR, error=_describe(exc))
            self._stop(exc)
            self._states.set(ConnectionState.ERROR, exc)

    async def _open(self) -> ClientConnection:
        bearer = self._token
        if self._token_provider is not None:
            result = self._token_provider()
            bearer = result if isinstance(result, str) else await result
        headers = credential_headers(bearer=bearer, cookie=self._cookie, extra=self._headers)
        options: dict[str, Any] = {}
        if self._ssl is not None:  # websockets refuses ssl=None for wss://
            options["ssl"] = self._ssl
        recovering = self._recover and self._positions.wants_recovery
        return await connect(
            recover_url(self.url) if recovering else self.url,
            additional_headers=headers,
            origin=Origin(self._origin) if self._origin is not None else None,
            open_timeout=self._open_timeout,
            # The application heartbeat detects dead connections; without it, fall
            # back to WebSocket pings.
            ping_interval=None if self._heartbeat_interval else 20,
            max_size=self._max_size,
            **options,
        )

    async def _serve(self, ws: ClientConnection) -> tuple[bool, int | None, str]:
        """Run one connection until it closes: whether it got going, and the close."""
        connected = False
        helpers: list[asyncio.Task[None]] = []
        self._ws = ws
        try:
            # docs/protocol.md: the welcome (connection_id, user_id) comes first.
            async with asyncio.timeout(self._open_timeout):
                first = await ws.recv()
            await self._receive(first)
            if self._recover:
                await self._send_recover(ws)
            connected = True
            self._states.set(ConnectionState.CONNECTED)
            log_event(logger, "connected", connection_id=self.connection_id)
            loop = asyncio.get_running_loop()
            # Flush the offline queue while reading, so its replies are read as they come.
            helpers.append(loop.create_task(self._outbox.attach(ws)))
            if self._heartbeat_interval:
                beat = self._outbox.heartbeat(ws, self._heartbeat_interval, self._heartbeat_timeout)
                helpers.append(loop.create_task(beat))
            async for frame in ws:
                await self._receive(frame)
        except ConnectionClosed:
            pass
        except TimeoutError:
            log_event(logger, "welcome_timeout", logging.WARNING)
        finally:
            self._ws = None
            for task in helpers:
                task.cancel()
            if ws.state is not State.CLOSED:
                ws.transport.abort()
            self._outbox.detach()
            self._positions.disconnected(self._rooms.joined)
            self._rooms.disconnected()
        reason = ws.close_reason or ""
        log_event(logger, "disconnected", code=ws.close_code, reason=reason)
        return connected, ws.close_code, reason

    async def _receive(self, frame: str | bytes) -> None:
        try:
            message = Message.parse(frame)
        except InvalidFrame as exc:
            log_event(logger, "invalid_frame", logging.WARNING, error=str(exc))
            return
        if self._outbox.resolve(message):
            return
        if (message.type == "system" and message.data.get("action") == "token_expiring"
                and self._token_provider is not None
                and (self._refreshing is None or self._refreshing.done())):
            # Off the read loop: the refresh's reply is read by it.
            self._refreshing = asyncio.get_running_loop().create_task(self._auto_refresh())
        deliver, outcome = self._positions.check(message)
        if deliver:
            recovery = self._track(message)
            await self._inbound.deliver(message)
            outcome = outcome or recovery
        if outcome is not None:
            self._rooms.get(outcome.room).recovery = outcome
            await self._inbound.recovered(outcome)

    async def _send_recover(self, ws: ClientConnection) -> None:
        """Hand the rooms' positions to the server, before anything else is sent."""
        envelope = self._positions.recover_message(str(uuid.uuid4()))
        if envelope is None:
            return
        reply = await self._outbox.send_now(ws, envelope, self.ack_timeout)
        if reply is not None:
            reply.add_done_callback(self._recover_answered)

    def _recover_answered(self, reply: asyncio.Future[Message]) -> None:
        if reply.cancelled():
            return
        error = reply.exception()
        if error is None:
            self._positions.acked(reply.result())
        else:  # a server without recovery may refuse or ignore it: room_joined tells
            log_event(logger, "recover_unanswered", error=_describe(error))

    def _track(self, message: Message) -> Recovery | None:
        """Keep the connection's ids, rooms and positions from the server's announcements."""
        if message.type == "system_notification" and "connection_id" in message.data:
            self.connection_id = str(message.data["connection_id"])
            if message.data.get("user_id") is not None:
                self.user_id = str(message.data["user_id"])
        self._rooms.track(message)
        room = message.target_room
        if room is not None and message.type == "room_joined":
            return self._positions.joined(room, message.data)
        if room is not None and message.type == "room_left":
            self._positions.left(room)
        return None

    def _stop(self, error: BaseException) -> None:
        """Fail everything still waiting, and end the message streams."""
        self._outbox.stop(error)
        self._inbound.end(None if isinstance(error, ClientClosed) else error)


def _reconnect_after(code: int) -> bool:
    try:
        return CloseCode(code).reconnect
    except ValueError:
        return True  # codes roomcast does not send: try again


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
