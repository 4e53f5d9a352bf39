"""Connection states, and telling callbacks, streams and waiters when they change."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from roomcast.client.dispatch import Handlers, call_soon
from roomcast.client.errors import ClientClosed
from roomcast.client.stream import Stream


class ConnectionState(StrEnum):
    """Where a :class:`~roomcast.client.Client` is.

    ``DISCONNECTED`` -> ``CONNECTING`` -> ``CONNECTED`` <-> ``RECONNECTING``, ending in
    ``DISCONNECTED`` (closed by the caller) or ``ERROR`` (a fatal error: rejected
    credentials, or a close code that forbids reconnecting).
    """

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DISCONNECTED = "disconnected"
    ERROR = "error"

    @property
    def final(self) -> bool:
        """Whether the client stays in this state for good (once it has started)."""
        return self in (ConnectionState.DISCONNECTED, ConnectionState.ERROR)


StateCallback = Callable[[ConnectionState], Any]
"""Called with each new state; may be async (then run as a task)."""


class StateTracker:
    """The current state, plus everyone watching it."""

    def __init__(self) -> None:
        self.state = ConnectionState.DISCONNECTED
        #: The fatal error, once the state is ``ERROR``.
        self.error: BaseException | None = None
        #: Whether the client has stopped for good (it starts DISCONNECTED, unfinished).
        self.finished = False
        self._callbacks = Handlers()
        self._streams: weakref.WeakSet[Stream[ConnectionState]] = weakref.WeakSet()
        self._waiters: list[tuple[frozenset[ConnectionState], asyncio.Future[ConnectionState]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def set(self, state: ConnectionState, error: BaseException | None = None) -> None:
        """Move to ``state`` and notify; a repeat of the current state is ignored."""
        if state is self.state:
            return
        self.state = state
        if error is not None:
            self.error = error
        if state.final:
            self.finished = True
        for stream in list(self._streams):
            stream.put(state)
            if state.final:
                stream.end()
        self._wake_waiters()
        for callback in self._callbacks.lookup(["*"]):
            call_soon(callback, state, "state", self._tasks)

    def on_change(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback`` on every change; returns a function that unregisters it."""
        return self._callbacks.add("*", callback)

    def stream(self, maxsize: int = 64) -> Stream[ConnectionState]:
        """Every change from now on, as an async iterator ending in a final state."""
        stream: Stream[ConnectionState] = Stream(maxsize, on_close=self._streams.discard)
        self._streams.add(stream)
        return stream

    async def wait_for(self, *states: ConnectionState) -> ConnectionState:
        """Wait until the state is one of ``states`` (even if it has moved on since).

        Raises:
            the fatal error, or :class:`ClientClosed`, if the client stops first.
        """
        wanted = frozenset(states)
        reached = self.state
        if reached not in wanted and not self.finished:
            future: asyncio.Future[ConnectionState] = asyncio.get_running_loop().create_future()
            self._waiters.append((wanted, future))
            reached = await future
        if reached in wanted:
            return reached
        raise self.error if self.error is not None else ClientClosed("client is closed")

    def _wake_waiters(self) -> None:
        keep = []
        for wanted, future in self._waiters:
            if future.done():
                continue
            if self.state in wanted or self.finished:
                future.set_result(self.state)
            else:
                keep.append((wanted, future))
        self._waiters = keep
