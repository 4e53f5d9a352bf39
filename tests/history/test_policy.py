"""Retention per room kind, from the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from roomcast import config
from roomcast.exceptions import ConfigError
from roomcast.history.base import Position, Publication, is_complete, stamp
from roomcast.history.policy import HistoryPolicy


def test_on_by_default_for_both_kinds() -> None:
    policy = config.load(environ={}, dev_secret_ok=False).history_policy
    assert policy.user is not None and policy.group is not None
    assert (policy.user.size, policy.user.ttl) == (100, 300.0)
    assert policy.group.meta_ttl == 7 * 86400
    assert policy.recovery_max == 100
    assert policy.for_room("user:1") is policy.user
    assert policy.for_room("group:g") is policy.group
    assert policy.for_room("lobby") is None


@pytest.mark.parametrize("env", [{"ROOMCAST_HISTORY_GROUP_SIZE": "0"},
                                 {"ROOMCAST_HISTORY_GROUP_TTL": "0"}])
def test_zero_turns_a_kind_off(env: dict[str, str]) -> None:
    policy = config.load(environ=env, dev_secret_ok=False).history_policy
    assert policy.for_room("group:g") is None
    assert policy.for_room("user:1") is not None


def test_recovery_max_and_meta_outliving_data() -> None:
    policy = HistoryPolicy.build(user_size=10, user_ttl=50, group_size=0, group_ttl=0,
                                 meta_ttl=5, recovery_max=3)
    assert policy.recovery_max == 3
    assert policy.user is not None and policy.user.meta_ttl == 50
    assert not HistoryPolicy.off().enabled


def test_bad_values_are_refused() -> None:
    with pytest.raises(ConfigError):
        config.load(environ={"ROOMCAST_HISTORY_USER_SIZE": "-1"}, dev_secret_ok=False)


def test_stamp_appends_fields_without_reencoding() -> None:
    assert stamp(b'{"a":1}', 7, "ep") == b'{"a":1,"offset":7,"epoch":"ep"}'
    with pytest.raises(ValueError):
        stamp(b"[1]", 1, "e")


def test_is_complete() -> None:
    pubs = [Publication(3, b"{}"), Publication(4, b"{}")]
    assert is_complete(pubs, 2, 4)
    assert not is_complete(pubs, 1, 4)
    assert not is_complete(pubs[:1], 2, 4)
    assert is_complete([], 5, 5)
    assert Position("e", 1).wire() == {"epoch": "e", "offset": 1}


async def test_memory_snapshot_keeps_epochs_offsets_and_data(tmp_path: Path) -> None:
    from roomcast.history import snapshot
    from roomcast.history.base import Retention
    from roomcast.history.memory import MemoryHistory
    from roomcast.types import RoomId

    keep = Retention(size=10, ttl=60.0, meta_ttl=600.0)
    room = RoomId("group:snap")
    before = MemoryHistory()
    for n in (1, 2, 3):
        await before.append(room, b'{"n":%d}' % n, keep, message_id=f"m{n}")
    path = str(tmp_path / "history.snapshot")
    assert snapshot.save(before, path) == 1
    after = MemoryHistory()
    assert snapshot.load(after, path) == 1
    assert await after.top(room, keep) == await before.top(room, keep)
    read = await after.read(room, keep, since=1, limit=10)
    assert [p.offset for p in read.publications] == [2, 3]
    again = await after.append(room, b'{"n":3}', keep, message_id="m3")
    assert again.new is False and again.position.offset == 3
    assert snapshot.load(MemoryHistory(), str(tmp_path / "missing")) == 0
    (tmp_path / "bad").write_text("not json\n")
    assert snapshot.load(MemoryHistory(), str(tmp_path / "bad")) == 0
