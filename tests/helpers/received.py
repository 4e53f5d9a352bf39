"""What an SDK client's application saw in one room: numbered messages and recoveries."""

from __future__ import annotations

import asyncio

from roomcast.client import Client, Message, Recovery


class Received:
    """The ``data.n`` of the room's ``message``s in arrival order, and its recovery
    outcomes; :meth:`until` waits for counts of them."""

    def __init__(self, client: Client, room: str, *, wait: float = 30.0) -> None:
        self.numbers: list[int] = []
        self.outcomes: list[Recovery] = []
        self.wait = wait
        self._changed = asyncio.Condition()
        client.on_room(room, self._message)
        client.on_recovery(self._recovery, room=room)

    async def _message(self, message: Message) -> None:
        if message.type == "message":
            async with self._changed:
                self.numbers.append(message.data["n"])
                self._changed.notify_all()

    async def _recovery(self, outcome: Recovery) -> None:
        async with self._changed:
            self.outcomes.append(outcome)
            self._changed.notify_all()

    async def until(self, numbers: int = 0, outcomes: int = 0) -> None:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(
                    lambda: len(self.numbers) >= numbers and len(self.outcomes) >= outcomes
                ), self.wait)
            except TimeoutError:
                raise AssertionError(f"waited for {numbers} messages and {outcomes} outcomes; "
                                     f"got {self.numbers}, {self.outcomes}") from None
