"""Outgoing messages: the offline queue, writing to the socket, and waiting for replies."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from roomcast.client.errors import ClientError, ConnectionLost, QueueFull
from roomcast.client.message import Message
from roomcast.client.queue import OfflineQueue, Overflow
from roomcast.client.replies import ReplyWaiters
from roomcast.logs import log_event

logger = logging.getLogger("roomcast.client")


@dataclass(eq=False, slots=True)
class Outgoing:
    """One message on its way out, and the future of its reply."""

    envelope: dict[str, Any]
    future: asyncio.Future[Message]
    timeout: float

    @property
    def id(self) -> str:
        message_id: str = self.envelope["id"]
        return message_id


class Outbox:
    """Sends each message at most once, in order, and hands back its reply.

    While no connection is attached, messages wait in a bounded :class:`OfflineQueue`.
    :meth:`attach` sends them oldest first; a message leaves the queue only when it is
    written, so a reconnect never sends it twice. A message written and not yet
    answered when the connection drops fails with :class:`ConnectionLost` rather than
    being resent, since the server may already have acted on it.
    """

    def __init__(self, limit: int, overflow: Overflow) -> None:
        self._queue: OfflineQueue[Outgoing] = OfflineQueue(limit, overflow, on_drop=_dropped)
        self._replies = ReplyWaiters()
        self._ws: ClientConnection | None = None
        #: Once set, every send fails with this (the client stopped).
        self.stopped: BaseException | None = None

    async def request(self, envelope: Mapping[str, Any], timeout: float) -> Message:
        """Send ``envelope`` (an ``id`` is added if missing) and return its reply."""
        if self.stopped is not None:
            raise self.stopped
        entry = Outgoing(
            {**envelope, "id": envelope.get("id") or str(uuid.uuid4())},
            asyncio.get_running_loop().create_future(),
            timeout,
        )
        ws = self._ws
        # Anything already queued goes first, so only an empty queue allows a direct write.
        if ws is None or self._queue or not await self._write(ws, entry):
            self._queue.push(entry)
        try:
            return await entry.future
        except asyncio.CancelledError:
            # Given up: if still queued it is never sent; a late reply is swallowed.
            self._queue.remove(entry)
            self._replies.discard(entry.id)
            raise

    async def ping(self, ws: ClientConnection, timeout: float) -> Message | None:
        """The heartbeat (a system ping) on ``ws`` only, never queued; None if ``ws`` is closing."""
        ping = {"type": "system", "id": str(uuid.uuid4()), "data": {"action": "ping"}}
        future = await self.send_now(ws, ping, timeout)
        return None if future is None else await future

    async def send_now(
        self, ws: ClientConnection, envelope: dict[str, Any], timeout: float
    ) -> asyncio.Future[Message] | None:
        """Write ``envelope`` (with an ``id``) on ``ws`` at once, ahead of the queue.

        Returns the future of its reply, or None if ``ws`` is closing.
        """
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        if not await self._write(ws, Outgoing(envelope, future, timeout)):
            return None
        return future

    async def heartbeat(self, ws: ClientConnection, interval: float, timeout: float) -> None:
        """Ping ``ws`` every ``interval`` s; drop it when a ping goes unanswered."""
        while True:
            await asyncio.sleep(interval)
            try:
                if await self.ping(ws, timeout) is None:
                    return
            except TimeoutError:
                log_event(logger, "heartbeat_missed", logging.WARNING, timeout=timeout)
                # A closing handshake would wait on the dead peer: drop the socket.
                ws.transport.abort()
                return
            except ClientError:  # the connection is gone anyway
                return

    async def attach(self, ws: ClientConnection) -> None:
        """Use ``ws`` from now on, after sending what was queued, oldest first."""
        self._ws = ws
        while self._queue:
            entry = self._queue.popleft()
            if entry.future.done():  # dropped from the queue while waiting
                continue
            if not await self._write(ws, entry):
                self._queue.push_front(entry)  # never written: it goes out next time
                return

    def detach(self) -> None:
        """The connection is gone: fail the messages that were awaiting a reply."""
        self._ws = None
        self._replies.fail_all(lambda: ConnectionLost("connection lost before the reply"))

    def resolve(self, message: Message) -> bool:
        """Hand a reply to its sender; whether ``message`` was a reply."""
        return self._replies.resolve(message)

    def stop(self, error: BaseException) -> None:
        """Fail every queued and unanswered message with ``error``, for good."""
        self.stopped = error
        self._ws = None
        for entry in self._queue.clear():
            if not entry.future.done():
                entry.future.set_exception(error)
        self._replies.fail_all(lambda: error)

    def __len__(self) -> int:
        return len(self._queue)

    async def _write(self, ws: ClientConnection, entry: Outgoing) -> bool:
        """Write ``entry`` unless ``ws`` is already closing; whether it was written."""
        if ws.state is not State.OPEN:
            return False
        self._replies.expect(entry.id, entry.future, entry.timeout)
        try:
            await ws.send(orjson.dumps(entry.envelope), text=True)
        except ConnectionClosed:
            # Handed to the socket, so it may have arrived: fail it, never resend it.
            self._replies.fail(entry.id, ConnectionLost("connection lost while sending"))
        return True


def _dropped(entry: Outgoing) -> None:
    if not entry.future.done():
        entry.future.set_exception(QueueFull("dropped from the full offline queue"))
