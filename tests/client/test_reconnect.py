"""Reconnecting, the offline queue, auth failures, heartbeats and ack timeouts.

Each test owns its gateway process, which it kills, restarts or pauses (SIGSTOP).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from roomcast.client import (
    AckTimeout,
    AuthError,
    AuthRejected,
    Backoff,
    Client,
    ClientClosed,
    ConnectionLost,
    ConnectionState,
    Message,
    Overflow,
    QueueFull,
)
from tests.client.support import (
    client_for,
    joined,
    kill,
    paused,
    start,
    until_state,
)
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token

CONNECTED, RECONNECTING = ConnectionState.CONNECTED, ConnectionState.RECONNECTING
WRONG_SECRET = "not-the-gateway-secret-but-as-long-as-one-" * 2


async def test_reconnects_after_kill_and_restart(fresh_gateway: GatewayProcess) -> None:
    gw = fresh_gateway
    async with client_for(gw, "u1", ["ops"]) as client:
        await joined(client, "group:ops")
        first_id = client.connection_id
        states = client.states()
        await kill(gw)
        await until_state(states, RECONNECTING)
        assert client.rooms == frozenset()
        assert not client.room("group:ops").joined
        await start(gw)
        await until_state(states, CONNECTED)
        await joined(client, "group:ops", "user:u1")
        assert client.connection_id != first_id
        assert (await client.ping()).data["action"] == "pong"


async def test_reconnects_after_graceful_shutdown(fresh_gateway: GatewayProcess) -> None:
    gw = fresh_gateway
    async with client_for(gw, "u1") as client:
        first_id = client.connection_id
        states = client.states()
        await asyncio.to_thread(gw.stop)  # SIGTERM: the gateway closes with 1001
        await until_state(states, RECONNECTING)
        await start(gw)
        await until_state(states, CONNECTED)
        assert client.connection_id != first_id


async def test_offline_queue_flushed_in_order_exactly_once(fresh_gateway: GatewayProcess) -> None:
    gw = fresh_gateway
    async with client_for(gw, "u1", ["ops"]) as client:
        await joined(client, "group:ops")
        states = client.states()
        await kill(gw)
        await until_state(states, RECONNECTING)
        sends = [asyncio.create_task(client.room("group:ops").send({"n": n})) for n in range(5)]
        await asyncio.sleep(0)  # one loop turn: each task runs up to its queued wait
        assert client.queued == 5
        assert not any(task.done() for task in sends)
        echoes = client.messages("message")
        await start(gw)
        acks = await asyncio.gather(*sends)
        assert client.queued == 0
        assert all(ack.data["status"] == "ok" for ack in acks)
        assert len({ack.data["message_id"] for ack in acks}) == 5
        await client.room("group:ops").send({"n": "end"})
        # The gateway echoes room messages to the sender, in order: everything it got
        # before "end" is here, so a duplicate would show.
        received: list[Any] = []
        while not received or received[-1] != "end":
            received.append((await echoes.get()).data["n"])
        assert received == [0, 1, 2, 3, 4, "end"]


async def test_backoff_schedule_and_reset_with_injected_sleep(
    fresh_gateway: GatewayProcess,
) -> None:
    gw = fresh_gateway
    delays: list[float] = []
    down = asyncio.Event()  # the kill is complete: the gateway may be started again

    async def sleep(delay: float) -> None:
        # Record instead of waiting; bring the gateway back after 4 failed attempts,
        # and at once after the second outage.
        delays.append(delay)
        if len(delays) in (4, 5):
            await down.wait()
            down.clear()
            await start(gw)

    async with client_for(gw, "u1", backoff=Backoff(), sleep=sleep, random=lambda: 0.0) as c:
        states = c.states()
        await kill(gw)
        down.set()
        await until_state(states, CONNECTED)
        assert delays == [1.0, 1.5, 2.25, 3.375]
        await kill(gw)
        down.set()
        await until_state(states, CONNECTED)
        # A successful connection resets the schedule.
        assert delays == [1.0, 1.5, 2.25, 3.375, 1.0]


async def test_jitter_comes_from_the_injected_random_source(
    fresh_gateway: GatewayProcess,
) -> None:
    gw = fresh_gateway
    delays: list[float] = []
    down = asyncio.Event()

    async def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) == 3:
            await down.wait()
            await start(gw)

    policy = Backoff(initial=2.0, factor=2.0, max_delay=5.0, jitter=0.5)
    async with client_for(gw, "u1", backoff=policy, sleep=sleep, random=lambda: 0.5) as c:
        states = c.states()
        await kill(gw)
        down.set()
        await until_state(states, CONNECTED)
    assert delays == [1.5, 3.0, 3.75]  # 2, 4, 5 (capped), each less 0.5 x 0.5 of itself


async def test_queue_overflow_raises(fresh_gateway: GatewayProcess) -> None:
    gw = fresh_gateway
    await kill(gw)  # nothing listens: the client stays offline
    client = client_for(gw, "u1", queue_limit=2)
    client.start()
    first = asyncio.create_task(client.send("presence"))
    second = asyncio.create_task(client.send("presence"))
    await asyncio.sleep(0)  # one loop turn: both are queued
    with pytest.raises(QueueFull):
        await client.send("presence")
    assert client.queued == 2
    await client.close()
    for task in (first, second):
        with pytest.raises(ClientClosed):
            await task


async def test_queue_drop_oldest_policy(fresh_gateway: GatewayProcess) -> None:
    gw = fresh_gateway
    await kill(gw)
    client = client_for(gw, "u1", queue_limit=2, queue_overflow=Overflow.DROP_OLDEST)
    client.start()
    sends = [asyncio.create_task(client.send("presence")) for _ in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(QueueFull, match="dropped"):
        await sends[0]
    assert client.queued == 2
    await start(gw)
    replies = await asyncio.gather(*sends[1:])
    assert [r.type for r in replies] == ["presence", "presence"]
    await client.close()


async def test_cancelled_queued_send_is_never_sent(fresh_gateway: GatewayProcess) -> None:
    gw = fresh_gateway
    async with client_for(gw, "u1", ["ops"]) as client:
        await joined(client, "group:ops")
        states = client.states()
        await kill(gw)
        await until_state(states, RECONNECTING)
        room = client.room("group:ops")
        dropped = asyncio.create_task(room.send({"n": "cancelled"}))
        kept = asyncio.create_task(room.send({"n": "kept"}))
        await asyncio.sleep(0)
        dropped.cancel()
        with pytest.raises(asyncio.CancelledError):
            await dropped
        assert client.queued == 1
        echoes = client.messages("message")
        await start(gw)
        await kept
        await room.send({"n": "end"})
        seen = [(await echoes.get()).data["n"] for _ in range(2)]
        assert seen == ["kept", "end"]


async def test_auth_failure_calls_the_provider_once_more_then_stops(
    gateway: GatewayProcess,
) -> None:
    calls = 0

    def provider() -> str:
        nonlocal calls
        calls += 1
        return make_token(WRONG_SECRET, "u1")

    client = Client(gateway.ws_url, token_provider=provider)
    with pytest.raises(AuthRejected) as err:
        await client.connect()
    assert err.value.status == 401
    assert isinstance(err.value, AuthError)
    assert calls == 2
    assert client.state is ConnectionState.ERROR
    assert client.error is err.value
    with pytest.raises(AuthRejected):
        await client.send("presence")
    with pytest.raises(AuthRejected):
        await client.wait_closed()
    await client.close()
    assert client.state is ConnectionState.ERROR


async def test_auth_refresh_succeeds_with_the_second_token(gateway: GatewayProcess) -> None:
    tokens = iter([make_token(WRONG_SECRET, "u1"), make_token(gateway.secret, "u1")])
    calls: list[str] = []

    async def provider() -> str:
        calls.append("called")
        return next(tokens)

    async with Client(gateway.ws_url, token_provider=provider) as client:
        assert client.user_id == "u1"
    assert len(calls) == 2


async def test_static_bad_token_fails_without_retrying(gateway: GatewayProcess) -> None:
    client = Client(gateway.ws_url, token=make_token(WRONG_SECRET, "u1"))
    states = client.states()
    with pytest.raises(AuthRejected):
        async with client:
            pass
    assert [s async for s in states] == [ConnectionState.CONNECTING, ConnectionState.ERROR]


async def test_refused_origin_is_an_auth_error(gateway_factory: Any) -> None:
    gw = gateway_factory(env={"WEBSOCKET_ALLOWED_ORIGINS": "https://app.example"})
    async with client_for(gw, "u1", origin="https://app.example") as client:
        assert client.state is CONNECTED
    with pytest.raises(AuthRejected) as err:
        await client_for(gw, "u1", origin="https://evil.example").connect()
    assert err.value.status == 403


async def test_token_refused_on_reconnect_stops_and_fails_queued_sends(
    fresh_gateway: GatewayProcess,
) -> None:
    gw = fresh_gateway
    good = make_token(gw.secret, "u1")
    calls = 0

    def provider() -> str:
        nonlocal calls
        calls += 1
        return good if calls == 1 else "not-a-jwt"

    async with client_for(gw, "u1", token_provider=provider) as client:
        states = client.states()
        await kill(gw)
        await until_state(states, RECONNECTING)
        queued = asyncio.create_task(client.send("presence"))
        await start(gw)
        with pytest.raises(AuthRejected):
            await queued
        assert client.state is ConnectionState.ERROR
        assert [s async for s in states][-1] is ConnectionState.ERROR
    # Called before every attempt (also while the gateway was down), and not forever.
    assert calls >= 3


async def test_ack_timeout_while_the_gateway_is_paused(gateway_factory: Any) -> None:
    gw = gateway_factory()
    async with client_for(gw, "u1", ["ops"], heartbeat_interval=None) as client:
        await joined(client, "group:ops")
        seen = client.messages()
        async with paused(gw):
            with pytest.raises(AckTimeout) as err:
                await client.room("group:ops").send({"n": "late"}, timeout=0.3)
        # Resumed: the gateway now handles the message; its late ack must not leak
        # into the stream. Everything before "end" is in the stream once "end" is.
        await client.room("group:ops").send({"n": "end"})
        got: list[Message] = []
        while not got or got[-1].data.get("n") != "end":
            got.append(await seen.get())
        assert [m.data.get("n") for m in got if m.type == "message"] == ["late", "end"]
        assert err.value.message_id not in {m.id for m in got}
        assert all(m.type == "message" for m in got)


async def test_missing_heartbeat_reply_reconnects(
    gateway_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gw = gateway_factory()
    # The paused gateway cannot answer; a running one on a busy machine answers well
    # within 5 s, so only the pause makes a heartbeat go missing.
    client = client_for(gw, "u1", heartbeat_interval=0.5, heartbeat_timeout=5.0)
    async with client:
        first_id = client.connection_id
        states = client.states()
        with caplog.at_level(logging.WARNING, logger="roomcast.client"):
            async with paused(gw):
                await until_state(states, RECONNECTING)
        await until_state(states, CONNECTED)
        assert client.connection_id != first_id
    assert "heartbeat_missed" in [r.getMessage() for r in caplog.records]


async def test_connection_lost_fails_unanswered_sends(gateway_factory: Any) -> None:
    gw = gateway_factory()
    async with client_for(gw, "u1", heartbeat_interval=None) as client:
        states = client.states()
        async with paused(gw):
            pending = asyncio.create_task(client.send("presence", timeout=60))
            await asyncio.sleep(0)  # one loop turn: the message is written
            assert client.queued == 0
            await kill(gw)
        with pytest.raises(ConnectionLost):
            await pending
        await until_state(states, RECONNECTING)
