"""Per-room positions: the recover message, duplicates, and recovery outcomes (no sockets)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roomcast.client import Invalidator, Message, Position, Reason, Recovery, keys_for_room
from roomcast.client.positions import Positions, recover_url

ROOM = "group:ops"


def pub(offset: int, epoch: str = "e1", room: str = ROOM, **extra: Any) -> Message:
    return Message.from_dict({"type": "message", "room": room, "data": {"n": offset},
                              "offset": offset, "epoch": epoch, **extra})


def joined(**data: Any) -> dict[str, Any]:
    return {"room": ROOM, "type": "group", **data}


def reconnected(p: Positions, rooms: set[str] | None = None) -> dict[str, Any] | None:
    """The previous connection (in ``rooms``) dropped; the new one sends its positions."""
    p.disconnected(rooms if rooms is not None else {ROOM})
    return p.recover_message("r1")


def test_first_connection_has_nothing_to_recover_and_reports_nothing() -> None:
    p = Positions()
    assert not p.wants_recovery
    assert p.recover_message("r1") is None
    assert p.joined(ROOM, joined(epoch="e1", offset=7)) is None
    assert p.get(ROOM) == Position("e1", 7)


def test_publications_advance_the_position_and_duplicates_are_dropped() -> None:
    p = Positions()
    p.joined(ROOM, joined(epoch="e1", offset=7))
    assert p.check(pub(8)) == (True, None)
    assert p.check(pub(9)) == (True, None)
    assert p.check(pub(9)) == (False, None)
    assert p.check(pub(3)) == (False, None)
    assert p.get(ROOM) == Position("e1", 9)
    assert p.stats.duplicates == 2


def test_messages_without_offset_or_epoch_always_pass() -> None:
    p = Positions()
    p.joined(ROOM, joined(epoch="e1", offset=7))
    plain = Message.from_dict({"type": "notification", "room": ROOM, "data": {}})
    odd = Message.from_dict({"type": "message", "room": ROOM, "offset": True, "epoch": "e1"})
    no_room = Message.from_dict({"type": "message", "offset": 1, "epoch": "e1"})
    for message in (plain, odd, no_room, plain):
        assert p.check(message) == (True, None)
    assert p.get(ROOM) == Position("e1", 7)


def test_recover_message_carries_every_position() -> None:
    p = Positions()
    p.joined(ROOM, joined(epoch="e1", offset=7))
    p.joined("user:u1", {"room": "user:u1", "epoch": "e9", "offset": 0})
    p.joined("group:plain", {"room": "group:plain"})  # no history: no position
    p.check(pub(8))
    assert p.wants_recovery
    assert reconnected(p, {ROOM, "user:u1", "group:plain"}) == {
        "type": "system",
        "id": "r1",
        "data": {"action": "recover", "positions": {
            ROOM: {"epoch": "e1", "offset": 8},
            "user:u1": {"epoch": "e9", "offset": 0},
        }},
    }


def test_recovered_room_keeps_its_position_for_the_replay() -> None:
    p = Positions()
    p.joined(ROOM, joined(epoch="e1", offset=7))
    reconnected(p)
    outcome = p.joined(ROOM, joined(epoch="e1", offset=10, recovered=True, replayed=3))
    assert outcome == Recovery(ROOM, True, Reason.RECOVERED, 3, Position("e1", 7))
    # The replay (8..10) is delivered, not mistaken for duplicates; live goes on after.
    assert [p.check(pub(n))[0] for n in (8, 9, 10, 10, 11)] == [True, True, True, False, True]
    assert p.stats.recovered == 1 and p.stats.not_recovered == 0


def test_not_recovered_room_starts_over_at_the_live_position() -> None:
    p = Positions()
    p.joined(ROOM, joined(epoch="e1", offset=7))
    reconnected(p)
    outcome = p.joined(ROOM, joined(epoch="e2", offset=4, recovered=False))
    assert outcome == Recovery(ROOM, False, Reason.NOT_RECOVERED, 0, Position("e2", 4))
    assert p.check(pub(5, "e2")) == (True, None)
    # A late publication of the lost stream: the app was already told to reload.
    assert p.check(pub(8, "e1")) == (False, None)
    assert p.stats.stale == 1


def test_recovered_never_moves_a_position_back() -> None:
    p = Positions()
    p.joined(ROOM, joined(epoch="e1", offset=7))
    reconnected(p)
    p.check(pub(9))  # arrived before room_joined (not from a roomcast server, but still)
    outcome = p.joined(ROOM, joined(epoch="e1", offset=10, recovered=True, replayed=3))
    assert outcome is not None and outcome.recovered
    assert [p.check(pub(n))[0] for n in (8, 9, 10)] == [False, False, True]


def test_recovered_true_with_another_epoch_is_not_trusted() -> None:
    p = Positions()
    p.joined(ROOM, joined(epoch="e1", offset=7))
    reconnected(p)
    outcome = p.joined(ROOM, joined(epoch="e2", offset=1, recovered=True, replayed=1))
    assert outcome is not None and not outcome.recovered
    assert outcome.reason is Reason.NOT_RECOVERED


def test_server_without_recovery_is_reported_not_recovered() -> None:
    p = Positions()
    p.joined(ROOM, joined(epoch="e1", offset=7))
    reconnected(p)
    outcome = p.joined(ROOM, joined(epoch="e1", offset=12))  # no `recovered` answer
    assert outcome == Recovery(ROOM, False, Reason.UNSUPPORTED, 0, Position("e1", 12))


def test_rooms_without_history_are_not_recovered_after_a_reconnect() -> None:
    p = Positions()
    assert p.joined(ROOM, joined()) is None
    assert reconnected(p) is None  # nothing to hand over
    outcome = p.joined(ROOM, joined())
    assert outcome == Recovery(ROOM, False, Reason.NO_HISTORY, 0, None)


def test_a_stream_the_server_could_not_read_is_not_recovered() -> None:
    p = Positions()
    p.joined(ROOM, joined(epoch="e1", offset=7))
    reconnected(p)
    outcome = p.joined(ROOM, joined(recovered=False, replayed=0))  # no epoch: Redis was down
    assert outcome == Recovery(ROOM, False, Reason.NOT_RECOVERED, 0, None)
    assert p.check(pub(9)) == (True, None)  # live publications carry positions again
    assert p.get(ROOM) == Position("e1", 9)


def test_history_switched_on_meanwhile_is_no_position() -> None:
    p = Positions()
    p.joined(ROOM, joined())
    reconnected(p)
    outcome = p.joined(ROOM, joined(epoch="e1", offset=3))
    assert outcome == Recovery(ROOM, False, Reason.NO_POSITION, 0, Position("e1", 3))


def test_a_room_joined_for_the_first_time_after_a_reconnect_reports_nothing() -> None:
    p = Positions()
    p.joined(ROOM, joined(epoch="e1", offset=7))
    reconnected(p)
    assert p.joined("group:new", {"room": "group:new", "epoch": "x", "offset": 1}) is None


def test_each_room_reports_once_per_reconnect() -> None:
    p = Positions()
    p.joined(ROOM, joined(epoch="e1", offset=7))
    reconnected(p)
    assert p.joined(ROOM, joined(epoch="e1", offset=7, recovered=True, replayed=0)) is not None
    # A second room_joined in the same connection (e.g. a membership change) is no reconnect.
    assert p.joined(ROOM, joined(epoch="e1", offset=7)) is None


def test_epoch_change_seen_live_is_reported() -> None:
    p = Positions()
    p.joined(ROOM, joined(epoch="e1", offset=7))
    deliver, outcome = p.check(pub(1, "e2"))
    assert deliver
    assert outcome == Recovery(ROOM, False, Reason.EPOCH_CHANGED, 0, Position("e2", 1))
    assert p.check(pub(2, "e2")) == (True, None)


def test_gap_seen_live_is_reported_and_delivered() -> None:
    p = Positions()
    p.joined(ROOM, joined(epoch="e1", offset=7))
    deliver, outcome = p.check(pub(10))
    assert deliver and outcome == Recovery(ROOM, False, Reason.GAP, 0, Position("e1", 10))


def test_left_rooms_are_forgotten_and_ignored_rooms_too() -> None:
    p = Positions()
    p.joined(ROOM, joined(epoch="e1", offset=7))
    p.joined("group:b", {"room": "group:b", "epoch": "b", "offset": 1})
    p.left("group:b")
    frame = reconnected(p, {ROOM})
    assert frame is not None and list(frame["data"]["positions"]) == [ROOM]
    p.acked(Message.from_dict({"type": "system", "id": "r1",
                               "data": {"action": "ack", "ignored": [ROOM, 5]}}))
    assert p.snapshot() == {}


def test_initial_positions_recover_on_the_first_connection() -> None:
    p = Positions({ROOM: Position("e1", 7)})
    frame = p.recover_message("r1")
    assert frame is not None and frame["data"]["positions"] == {ROOM: {"epoch": "e1", "offset": 7}}
    outcome = p.joined(ROOM, joined(epoch="e1", offset=9, recovered=True, replayed=2))
    assert outcome is not None and outcome.recovered


def test_wire_positions_are_validated() -> None:
    assert Position.from_wire({"epoch": "e", "offset": 0}) == Position("e", 0)
    for bad in ({"epoch": "", "offset": 1}, {"epoch": "e", "offset": -1},
                {"epoch": "e", "offset": "1"}, {"epoch": 3, "offset": 1}, [1], None):
        assert Position.from_wire(bad) is None


def test_recover_url() -> None:
    assert recover_url("ws://h/websocket/connect") == "ws://h/websocket/connect?recover=1"
    assert recover_url("wss://h/ws?a=1&recover=0") == "wss://h/ws?a=1&recover=1"


def test_invalidator_drops_every_key_of_a_room_that_did_not_recover() -> None:
    cache: dict[tuple[str, ...], int] = {
        ("users", "1"): 1, ("chat", "messages", "t1"): 2, ("chat", "messages", "t2"): 3,
        ("scheduler",): 4, ("orders", "9"): 5,
    }
    invalidator = Invalidator(cache)
    assert invalidator.on_recovery(Recovery("thread:t1", True, Reason.RECOVERED)) == []
    assert len(cache) == 5
    dropped = invalidator.on_recovery(Recovery("thread:t1", False, Reason.NOT_RECOVERED))
    assert dropped == keys_for_room("thread:t1")
    # The app's own keys are not in the React client's table: untouched.
    assert cache == {("chat", "messages", "t2"): 3, ("orders", "9"): 5}


@st.composite
def deliveries(draw: st.DrawFn) -> list[tuple[str, int]]:
    """An epoch-1 stream with duplicates and late repeats, maybe then an epoch-2 one."""
    top = draw(st.integers(1, 30))
    out = [("e1", n) for n in range(1, top + 1)]
    for _ in range(draw(st.integers(0, 20))):
        i = draw(st.integers(0, len(out) - 1))
        j = draw(st.integers(i, len(out)))
        out.insert(j, out[i])  # a duplicate arrives at or after the original
    if draw(st.booleans()):
        out += [("e2", n) for n in range(1, draw(st.integers(1, 10)) + 1)]
        if draw(st.booleans()):
            out.append(("e1", top))  # a late one of the old stream
    return out


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries())
def test_whatever_arrives_each_publication_is_delivered_once_in_order(
    arrivals: list[tuple[str, int]],
) -> None:
    p = Positions()
    p.joined(ROOM, joined(epoch="e1", offset=0))
    delivered = [(e, n) for e, n in arrivals if p.check(pub(n, e))[0]]
    expected = sorted(set(arrivals), key=lambda x: (x[0], x[1]))
    assert delivered == expected
