"""Match the server's replies to the messages that asked for them, by ``id``."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable

from roomcast.client.errors import AckTimeout, ServerError
from roomcast.client.message import Message


class ReplyWaiters:
    """Futures waiting for the reply carrying their message's ``id``.

    The server answers every message that has an ``id`` exactly once: an ``error``
    fails the future with :class:`ServerError`, anything else resolves it. A reply
    that comes after its timeout is recognised and swallowed, so it is not mistaken
    for a new message.
    """

    def __init__(self, remember: int = 1024) -> None:
        self._waiting: dict[str, tuple[asyncio.Future[Message], asyncio.TimerHandle]] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._remember = remember

    def expect(self, message_id: str, future: asyncio.Future[Message], timeout: float) -> None:
        """Wait for the reply to ``message_id``; fail with :class:`AckTimeout` after ``timeout``."""
        timer = asyncio.get_running_loop().call_later(timeout, self._expire, message_id, timeout)
        self._waiting[message_id] = (future, timer)

    def resolve(self, message: Message) -> bool:
        """Hand ``message`` to its waiter; whether it was a reply (and so consumed)."""
        if message.id is None:
            return False
        entry = self._pop(message.id)
        if entry is None:
            return message.id in self._finished
        if not entry.done():
            if message.type == "error":
                entry.set_exception(ServerError.from_data(dict(message.data), message.id))
            else:
                entry.set_result(message)
        return True

    def fail(self, message_id: str, error: BaseException) -> None:
        """Fail one waiter (its message could not be sent)."""
        future = self._pop(message_id)
        if future is not None and not future.done():
            future.set_exception(error)

    def fail_all(self, error: Callable[[], BaseException]) -> None:
        """Fail every waiter, each with a fresh ``error()`` (the connection is gone)."""
        for message_id in list(self._waiting):
            self.fail(message_id, error())

    def discard(self, message_id: str) -> None:
        """Stop waiting (the caller gave up); a later reply is swallowed."""
        self._pop(message_id)

    def __len__(self) -> int:
        return len(self._waiting)

    def _expire(self, message_id: str, timeout: float) -> None:
        self.fail(message_id, AckTimeout(message_id, timeout))

    def _pop(self, message_id: str) -> asyncio.Future[Message] | None:
        entry = self._waiting.pop(message_id, None)
        if entry is None:
            return None
        future, timer = entry
        timer.cancel()
        self._finished[message_id] = None
        if len(self._finished) > self._remember:
            self._finished.popitem(last=False)
        return future
