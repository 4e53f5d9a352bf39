"""Helpers for the SDK tests: clients of a real gateway process, and waiting on them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from roomcast.client import Backoff, Client, ConnectionState, Message, Stream
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token

#: Reconnect quickly in tests: this is configuration, not a wait.
FAST = Backoff(initial=0.05, factor=1.5, max_delay=0.2, jitter=0.0)


def client_for(gw: GatewayProcess, user: str, groups: list[str] | None = None, **kw: Any) -> Client:
    kw.setdefault("backoff", FAST)
    if not {"token", "token_provider", "cookie"} & kw.keys():
        kw["token"] = make_token(gw.secret, user, groups=groups)
    return Client(gw.ws_url, **kw)


async def joined(client: Client, *rooms: str) -> None:
    """Wait until the server has put the client in every one of ``rooms``."""
    for room in rooms:
        await client.room(room).wait_joined()


async def next_matching(stream: Stream[Message], pred: Callable[[Message], bool]) -> Message:
    """The next message of ``stream`` matching ``pred`` (bounded by the test timeout)."""
    async for message in stream:
        if pred(message):
            return message
    raise AssertionError("stream ended")


async def until_state(states: Stream[ConnectionState], wanted: ConnectionState) -> None:
    """Consume state changes until ``wanted`` is reached."""
    async for state in states:
        if state is wanted:
            return
    raise AssertionError(f"client stopped before {wanted}")


@asynccontextmanager
async def paused(gw: GatewayProcess) -> AsyncIterator[None]:
    """SIGSTOP the gateway: sockets stay open but nothing is answered, until SIGCONT."""
    assert gw.proc is not None
    pid = gw.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):  # killed meanwhile
            os.kill(pid, signal.SIGCONT)


async def kill(gw: GatewayProcess) -> None:
    await asyncio.to_thread(gw.kill)


async def start(gw: GatewayProcess) -> None:
    await asyncio.to_thread(gw.start)
