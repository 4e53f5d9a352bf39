"""The join handover without I/O: what a joining connection is sent, and never twice."""

from __future__ import annotations

from roomcast.broker.base import ToRoom, ToUser
from roomcast.history.base import Publication, stamp
from roomcast.history.handover import Handover
from roomcast.types import ConnId, RoomId, UserId

ROOM = RoomId("group:h")
ME, OTHER = ConnId("me"), ConnId("other")


def pub(offset: int) -> bytes:
    return stamp(b'{"type":"message"}', offset, "e")


def test_live_publications_during_the_join_follow_the_replay_without_overlap() -> None:
    handover = Handover()
    handover.begin(ME, ROOM)
    for offset in (3, 4, 5):  # arrive while the stream is read
        assert handover.offer(ToRoom(ROOM), pub(offset)) == {ME}
    replay = [Publication(o, pub(o)) for o in (2, 3, 4)]
    frames = handover.finish(ME, ROOM, replay, after=4)
    assert frames == [pub(2), pub(3), pub(4), pub(5)]
    assert not handover.active
    assert handover.offer(ToRoom(ROOM), pub(6)) == set()  # direct delivery from now on


def test_an_unreadable_stream_flushes_everything_buffered() -> None:
    handover = Handover()
    handover.begin(ME, ROOM)
    handover.offer(ToRoom(ROOM), pub(7))
    handover.offer(ToRoom(ROOM), b'{"type":"room_update"}')  # no offset: an event
    assert handover.finish(ME, ROOM, [], after=None) == [pub(7), b'{"type":"room_update"}']


def test_user_messages_buffer_for_the_personal_room_and_exclusions_hold() -> None:
    handover = Handover()
    handover.begin(ME, RoomId("user:u"))
    assert handover.offer(ToUser(UserId("u")), pub(1)) == {ME}
    handover.begin(ME, ROOM)
    assert handover.offer(ToRoom(ROOM, exclude=ME), pub(1)) == set()


def test_lagging_publications_up_to_the_join_offset_are_not_sent_again() -> None:
    """Joined at offset 10 while this instance had delivered up to 8 live: 9 and 10 (in
    the replay) still arrive over pub/sub; the joiner skips them, others get them."""
    handover = Handover()
    handover.begin(ME, ROOM)
    handover.finish(ME, ROOM, [Publication(o, pub(o)) for o in (9, 10)], after=10,
                    delivered=8)
    assert handover.offer(ToRoom(ROOM), pub(9)) == {ME}
    assert handover.offer(ToRoom(ROOM), pub(10)) == {ME}
    assert handover.offer(ToRoom(ROOM), pub(11)) == set()
    assert not handover.active


def test_a_cancelled_join_leaves_nothing_behind() -> None:
    handover = Handover()
    handover.begin(ME, ROOM)
    handover.begin(OTHER, ROOM)
    handover.offer(ToRoom(ROOM), pub(1))
    assert handover.cancel(ME, ROOM) == [pub(1)]
    assert handover.cancel(OTHER, ROOM) == [pub(1)]
    assert not handover.active
