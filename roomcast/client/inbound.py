"""Incoming messages: message streams, and type/room handlers run in arrival order."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable

from roomcast.client.dispatch import ANY, Handler, Handlers, call_all
from roomcast.client.message import Message
from roomcast.client.positions import Recovery
from roomcast.client.stream import Stream

ROOM_KEY = "room:"


class Inbound:
    """Delivers each message to the streams at once and to the handlers in order.

    Handlers run one message at a time in a task of their own, so a slow handler
    never delays replies. The backlog between the socket and the handlers is bounded:
    when it is full, :meth:`deliver` waits, the client stops reading and TCP pushes
    back on the server (which then treats this client as a slow consumer).
    """

    def __init__(self, limit: int) -> None:
        self._handlers = Handlers()
        # Recovery outcomes by room name (or ``*``), kept apart from message types.
        self._recovery = Handlers()
        self._backlog: asyncio.Queue[Message | Recovery] = asyncio.Queue(limit)
        # Each stream's wanted types (empty: all); weak, so a dropped stream is forgotten.
        self._streams: weakref.WeakKeyDictionary[Stream[Message], frozenset[str]] = (
            weakref.WeakKeyDictionary()
        )

    def on(self, key: str, handler: Handler[Message]) -> Callable[[], None]:
        """Register a handler for a type, ``*``, or ``room:<id>``; returns its remover."""
        return self._handlers.add(key, handler)

    def on_recovery(self, room: str, handler: Handler[Recovery]) -> Callable[[], None]:
        """Register a handler of the recovery outcomes of ``room`` (``*``: every room)."""
        return self._recovery.add(room, handler)

    def stream(self, types: frozenset[str], maxsize: int) -> Stream[Message]:
        """A new stream of the messages of ``types`` (all if empty)."""
        stream: Stream[Message] = Stream(maxsize, on_close=self._forget)
        self._streams[stream] = types
        return stream

    async def deliver(self, message: Message) -> None:
        """Feed the streams, then queue ``message`` for the handlers."""
        for stream, wanted in list(self._streams.items()):
            if not wanted or message.type in wanted:
                stream.put(message)
        await self._backlog.put(message)

    async def recovered(self, outcome: Recovery) -> None:
        """Queue a room's recovery outcome, in order with the messages around it."""
        await self._backlog.put(outcome)

    async def run(self) -> None:
        """Call the handlers of each message in turn; runs until cancelled."""
        while True:
            message = await self._backlog.get()
            if isinstance(message, Recovery):
                handlers = self._recovery.lookup([message.room, ANY])
                await call_all(handlers, message, "recovery")
                continue
            keys = [message.type, ANY]
            if message.room is not None:
                keys.insert(0, ROOM_KEY + message.room)
            await call_all(self._handlers.lookup(keys), message, message.type)

    def end(self, error: BaseException | None) -> None:
        """End every stream; their readers then get ``error`` if given."""
        for stream in list(self._streams):
            stream.end(error)

    def _forget(self, stream: Stream[Message]) -> None:
        self._streams.pop(stream, None)
