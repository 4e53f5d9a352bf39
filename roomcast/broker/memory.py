"""The in-memory broker: one instance, no other instances to reach."""

from __future__ import annotations

from roomcast.broker.base import BrokerHandler, ControlCommand, Target
from roomcast.exceptions import BrokerError


class MemoryBroker:
    """Hands every publication straight to the local handler."""

    alone = True

    def __init__(self) -> None:
        self._handler: BrokerHandler | None = None

    @property
    def healthy(self) -> bool:
        return True

    @property
    def health_reason(self) -> str | None:
        return None

    async def start(self, handler: BrokerHandler) -> None:
        self._handler = handler

    def _require_handler(self) -> BrokerHandler:
        if self._handler is None:
            raise BrokerError("broker not started")
        return self._handler

    async def publish(self, target: Target, payload: bytes) -> int:
        return self._require_handler().handle_publication(target, payload)

    async def publish_control(self, command: ControlCommand) -> None:
        await self._require_handler().handle_control(command)

    async def subscribe_room(self, room: str) -> None:
        return None

    async def unsubscribe_room(self, room: str) -> None:
        return None

    async def close(self) -> None:
        self._handler = None
