"""``open_store`` picks the backend from the URL scheme."""

from __future__ import annotations

from pathlib import Path

import pytest

from roomcast.exceptions import ConfigError
from roomcast.membership import Group, open_store
from roomcast.membership.postgres import PostgresMembershipStore
from roomcast.membership.redis import RedisMembershipStore
from roomcast.membership.sqlite import SqliteMembershipStore
from roomcast.types import GroupId, UserId


@pytest.mark.parametrize(
    ("value", "kind", "where"),
    [
        ("/var/lib/roomcast/m.db", SqliteMembershipStore, "/var/lib/roomcast/m.db"),
        ("m.db", SqliteMembershipStore, "m.db"),
        ("sqlite:///var/lib/roomcast/m.db", SqliteMembershipStore, "/var/lib/roomcast/m.db"),
        ("sqlite://m.db", SqliteMembershipStore, "m.db"),
        ("SQLite://:memory:", SqliteMembershipStore, ":memory:"),
        ("redis://127.0.0.1:6390/2", RedisMembershipStore, "redis://127.0.0.1:6390/2"),
        ("rediss://h:6390", RedisMembershipStore, "rediss://h:6390"),
        ("postgres://u@h/db", PostgresMembershipStore, "postgres://u@h/db"),
        ("postgresql://u@h/db", PostgresMembershipStore, "postgresql://u@h/db"),
    ],
)
def test_scheme_picks_backend(value: str, kind: type, where: str) -> None:
    store = open_store(value)
    assert isinstance(store, kind)
    attribute = {SqliteMembershipStore: "path", RedisMembershipStore: "url"}.get(kind, "dsn")
    assert getattr(store, attribute) == where


@pytest.mark.parametrize("value", ["mysql://u:secret@h/db", "", "  ", "sqlite://"])
def test_bad_value_is_config_error_without_secrets(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_store(value)
    assert "secret" not in str(info.value)


async def test_plain_path_store_works(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "m.db"))
    await store.open()
    try:
        assert await store.add(UserId("u"), GroupId("g"), "G") is True
        assert await store.groups_of(UserId("u")) == [Group(GroupId("g"), "G")]
    finally:
        await store.close()
