"""The SDK's small pure pieces: frames, URLs, failure classes, replies, streams."""

from __future__ import annotations

import asyncio

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus, InvalidURI
from websockets.http11 import Response

from roomcast.client import AckTimeout, Message, ServerError, normalize_url
from roomcast.client.handshake import Failure, classify, credential_headers
from roomcast.client.message import InvalidFrame
from roomcast.client.replies import ReplyWaiters
from roomcast.client.states import ConnectionState, StateTracker
from roomcast.client.stream import Stream


def test_message_parse_keeps_the_envelope() -> None:
    m = Message.parse(
        b'{"id":"1","type":"message","room":"group:x","from":"c1",'
        b'"data":{"a":1},"timestamp":"2026-01-01T00:00:00Z","extra":true}'
    )
    assert (m.id, m.type, m.room, m.from_, m.to) == ("1", "message", "group:x", "c1", None)
    assert dict(m.data) == {"a": 1}
    assert m.raw["extra"] is True
    assert m.target_room == "group:x"


def test_message_target_room_from_data() -> None:
    assert (
        Message.from_dict({"type": "room_left", "data": {"room_id": "group:y"}}).target_room
        == "group:y"
    )


@pytest.mark.parametrize("frame", [b"not json", b"[1]", b'{"data": {}}', b'{"type": 3}'])
def test_bad_frames_are_refused(frame: bytes) -> None:
    with pytest.raises(InvalidFrame):
        Message.parse(frame)


def test_odd_field_types_are_dropped_not_trusted() -> None:
    m = Message.from_dict({"type": "x", "id": 5, "room": [], "data": "str", "timestamp": 1.5})
    assert (m.id, m.room, dict(m.data), m.timestamp) == (None, None, {}, None)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ws://h:1", "ws://h:1/websocket/connect"),
        ("http://h:1/", "ws://h:1/websocket/connect"),
        ("https://h/custom/ws?x=1", "wss://h/custom/ws?x=1"),
        ("wss://h:443/websocket/connect", "wss://h:443/websocket/connect"),
    ],
)
def test_normalize_url(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


@pytest.mark.parametrize("url", ["ftp://h", "localhost:8080", "ws://"])
def test_normalize_url_refuses_non_websocket_urls(url: str) -> None:
    with pytest.raises(ValueError, match="not a WebSocket URL"):
        normalize_url(url)


def test_credential_headers() -> None:
    assert credential_headers(bearer="T", cookie=None, extra={"X-A": "1"}) == [
        ("X-A", "1"),
        ("Authorization", "Bearer T"),
    ]
    assert credential_headers(bearer=None, cookie="C", extra=None) == [
        ("Cookie", "falcon_auth_token=C")
    ]


def status(code: int) -> InvalidStatus:
    return InvalidStatus(Response(code, "x", Headers()))


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (status(401), (Failure.AUTH, 401)),
        (status(403), (Failure.AUTH, 403)),
        (status(503), (Failure.RETRY, 503)),
        (status(429), (Failure.RETRY, 429)),
        (status(404), (Failure.FATAL, 404)),
        (ConnectionRefusedError(), (Failure.RETRY, None)),
        (TimeoutError(), (Failure.RETRY, None)),
        (InvalidURI("x", "bad"), (Failure.FATAL, None)),
        (RuntimeError(), (Failure.FATAL, None)),
    ],
)
def test_classify(exc: Exception, expected: tuple[Failure, int | None]) -> None:
    assert classify(exc) == expected


async def test_replies_resolve_fail_and_swallow_late_ones() -> None:
    loop = asyncio.get_running_loop()
    waiters = ReplyWaiters()
    ok, bad, slow = (loop.create_future() for _ in range(3))
    waiters.expect("a", ok, 10)
    waiters.expect("b", bad, 10)
    waiters.expect("c", slow, 0)
    assert waiters.resolve(Message.from_dict({"type": "system", "id": "a", "data": {}}))
    assert (await ok).id == "a"
    assert waiters.resolve(
        Message.from_dict(
            {
                "type": "error",
                "id": "b",
                "data": {"code": "forbidden", "message": "no", "temporary": False},
            }
        )
    )
    with pytest.raises(ServerError) as err:
        await bad
    assert (err.value.code, err.value.temporary) == ("forbidden", False)
    with pytest.raises(AckTimeout):
        await slow
    # The late reply to "c" is recognised as a reply; unknown ids are not.
    assert waiters.resolve(Message.from_dict({"type": "system", "id": "c"}))
    assert not waiters.resolve(Message.from_dict({"type": "message", "id": "zzz"}))
    assert len(waiters) == 0


async def test_stream_drops_oldest_and_ends_with_the_error() -> None:
    stream: Stream[int] = Stream(2)
    for i in range(4):
        stream.put(i)
    stream.end(RuntimeError("boom"))
    stream.put(99)  # ignored once ended
    assert [await stream.get(), await stream.get()] == [2, 3]
    assert stream.dropped == 2
    with pytest.raises(RuntimeError, match="boom"):
        await stream.get()


async def test_stream_wakes_a_waiting_reader_and_ends_cleanly() -> None:
    stream: Stream[str] = Stream(10)
    reader = asyncio.ensure_future(stream.get())
    await asyncio.sleep(0)  # let the reader block (a yield, not a wait for time)
    stream.put("x")
    assert await reader == "x"
    stream.end()
    assert [item async for item in stream] == []


async def test_wait_for_reports_a_state_even_if_it_moved_on() -> None:
    tracker = StateTracker()
    waiter = asyncio.ensure_future(tracker.wait_for(ConnectionState.CONNECTED))
    await asyncio.sleep(0)  # let it register (a loop turn, not a wait for time)
    for state in (
        ConnectionState.CONNECTING,
        ConnectionState.CONNECTED,
        ConnectionState.RECONNECTING,
    ):
        tracker.set(state)
    assert await waiter is ConnectionState.CONNECTED


async def test_wait_for_raises_the_fatal_error_and_callbacks_may_be_async() -> None:
    tracker = StateTracker()
    seen: asyncio.Queue[ConnectionState] = asyncio.Queue()

    async def callback(state: ConnectionState) -> None:
        await seen.put(state)

    tracker.on_change(callback)
    waiter = asyncio.ensure_future(tracker.wait_for(ConnectionState.CONNECTED))
    await asyncio.sleep(0)
    tracker.set(ConnectionState.ERROR, RuntimeError("fatal"))
    with pytest.raises(RuntimeError, match="fatal"):
        await waiter
    with pytest.raises(RuntimeError, match="fatal"):
        await tracker.wait_for(ConnectionState.CONNECTED)
    assert await seen.get() is ConnectionState.ERROR
    assert await tracker.wait_for(ConnectionState.ERROR) is ConnectionState.ERROR
