"""A bounded async iterator that the client feeds without ever waiting."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")


class Stream(Generic[T]):
    """Items pushed by the client, read with ``async for``.

    ``put`` never blocks: a reader that falls ``maxsize`` items behind loses the
    oldest ones (counted in :attr:`dropped`), so one idle reader cannot stall the
    connection. Iteration ends when the client closes, or raises the client's fatal
    error after the items already received.
    """

    def __init__(self, maxsize: int, on_close: Callable[[Stream[T]], None] | None = None) -> None:
        if maxsize < 1:
            raise ValueError("stream maxsize must be at least 1")
        self._maxsize = maxsize
        self._items: deque[T] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._error: BaseException | None = None
        self._on_close = on_close
        #: Items lost because the reader fell behind.
        self.dropped = 0

    def put(self, item: T) -> None:
        """Add an item (the client's side); drops the oldest when full."""
        if self._closed:
            return
        if len(self._items) >= self._maxsize:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self._wakeup.set()

    def end(self, error: BaseException | None = None) -> None:
        """No more items (the client's side); readers then get ``error`` if given."""
        if not self._closed:
            self._closed = True
            self._error = error
            self._wakeup.set()

    async def aclose(self) -> None:
        """Stop reading (the reader's side): the client forgets this stream."""
        self.end()
        self._items.clear()
        if self._on_close is not None:
            self._on_close(self)
            self._on_close = None

    def __aiter__(self) -> Stream[T]:
        return self

    async def __anext__(self) -> T:
        while not self._items:
            if self._closed:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._items.popleft()

    async def get(self) -> T:
        """The next item; ``StopAsyncIteration`` once the stream has ended."""
        return await self.__anext__()

    async def __aenter__(self) -> Stream[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
