"""docs/protocol.md keeps up with roomcast.protocol: every code, type and action is specified.

A code or message type added to the code without its paragraph in the specification
fails here, and so does a table that says something else than the code (whether an
error is temporary, whether a close code is worth a reconnect).
"""

from __future__ import annotations

import re
from typing import get_args

import pytest

from roomcast.broker import redis_wire
from roomcast.protocol.codes import CloseCode, ErrorCode
from roomcast.protocol.envelope import CLIENT_TYPES, KNOWN_TYPES, SERVER_API_TYPES, SystemAction
from tests.docs.support import ROOT, section

SPEC = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")


def table_rows(text: str) -> dict[str, list[str]]:
    """Markdown table rows of a section, by their first cell (backticks and bold removed)."""
    rows = {}
    for line in text.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0].strip("`* ")] = [c.replace("*", "").strip() for c in cells[1:]]
    return rows


def test_the_spec_has_its_sections() -> None:
    for title in ("Handshake and authentication", "The envelope", "Client messages", "Replies",
                  "Server messages", "Error codes", "Close codes", "Rooms", "Liveness",
                  "Limits", "Delivery guarantees", "History and recovery", "Presence",
                  "Token lifecycle", "Between instances: Redis",
                  "Compatibility with the Go gateway and its React client"):
        assert section(SPEC, title).strip(), f"docs/protocol.md lacks '## {title}'"


@pytest.mark.parametrize("code", list(ErrorCode), ids=str)
def test_every_error_code_is_specified(code: ErrorCode) -> None:
    rows = table_rows(section(SPEC, "Error codes"))
    assert str(code) in rows, f"add a row for `{code}` to the Error codes table"
    temporary = rows[str(code)][0]
    assert temporary == ("yes" if code.temporary else "no"), (
        f"`{code}`: the table says temporary={temporary!r}, the code says {code.temporary}")


def test_no_error_code_is_specified_that_does_not_exist() -> None:
    documented = set(table_rows(section(SPEC, "Error codes"))) - {"code"}
    assert documented == {str(c) for c in ErrorCode}


@pytest.mark.parametrize("code", list(CloseCode), ids=lambda c: f"{c.value}-{c.name}")
def test_every_close_code_is_specified(code: CloseCode) -> None:
    rows = table_rows(section(SPEC, "Close codes"))
    assert str(code.value) in rows, f"add a row for {code.value} to the Close codes table"
    reconnect = rows[str(code.value)][-1].split()[0].strip(",")
    assert reconnect == ("yes" if code.reconnect else "no"), (
        f"{code.value}: the table says reconnect {reconnect!r}, the code says {code.reconnect}")


def test_no_close_code_is_specified_that_does_not_exist() -> None:
    documented = set(table_rows(section(SPEC, "Close codes"))) - {"code"}
    assert documented == {str(c.value) for c in CloseCode}


@pytest.mark.parametrize("kind", sorted(CLIENT_TYPES))
def test_every_client_type_has_its_paragraph(kind: str) -> None:
    assert re.search(rf"^### .*`{kind}`", section(SPEC, "Client messages"), re.M), (
        f"add a '### `{kind}`' paragraph to Client messages")


@pytest.mark.parametrize("action", get_args(SystemAction))
def test_every_system_action_is_specified(action: str) -> None:
    rows = table_rows(section(SPEC, "Client messages"))
    assert action in rows, f"add a row for the system action `{action}`"


@pytest.mark.parametrize("kind", sorted(KNOWN_TYPES))
def test_every_known_type_is_named(kind: str) -> None:
    assert f"`{kind}`" in section(SPEC, "The envelope")


def test_the_server_api_types_are_listed_in_order() -> None:
    listed = re.findall(r"`(\w+)`", section(SPEC, "The envelope").split("the ten types")[1]
                        .split(";")[0])
    assert tuple(listed) == SERVER_API_TYPES


@pytest.mark.parametrize("channel", [*redis_wire.CHANNELS, redis_wire.room_channel("{room}")])
def test_every_redis_channel_is_specified(channel: str) -> None:
    assert channel in table_rows(section(SPEC, "Between instances: Redis"))


@pytest.mark.parametrize("kind", sorted(redis_wire._CONTROL_KINDS))
def test_every_control_command_is_specified(kind: str) -> None:
    redis = section(SPEC, "Between instances: Redis")
    assert f'"kind":"{kind}"' in redis and f"- `{kind}`:" in redis


def test_the_table_reader_sees_what_a_reader_sees() -> None:
    rows = table_rows("| code | temporary |\n|---|---|\n| `forbidden` | **no** |\n")
    assert rows == {"code": ["temporary"], "forbidden": ["no"]}
