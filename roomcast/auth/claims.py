"""The claims roomcast reads from a verified token, and who counts as an administrator."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from roomcast.exceptions import AuthError
from roomcast.membership.base import Group
from roomcast.types import GroupId, UserId


@dataclass(frozen=True, slots=True)
class Claims:
    """The verified identity carried by a token."""

    user_id: UserId
    character_id: int | None
    character_name: str
    scopes: frozenset[str]
    groups: tuple[Group, ...]
    expires_at: float
    #: ``iat``, when the token has one (revocation compares it).
    issued_at: float | None = None
    #: ``jti``, else a digest of the token: names one token (a kick may ban it).
    token_id: str = ""


#: Go's int: a character id outside it cannot come from the Go gateway (and does not fit
#: the registry's JSON).
INT64 = range(-(2**63), 2**63)
#: Seconds since the epoch beyond which ``exp`` or ``iat`` is nonsense (and overflows a float).
MAX_TIME = 2**53
MAX_NAME = 256
MAX_SCOPES = 4096
MAX_GROUP_ID = 128
MAX_GROUPS = 256


def _text(value: object, limit: int) -> str:
    """A claim string: at most ``limit`` characters and valid UTF-8 (no lone surrogates,
    which JSON allows but nothing downstream can encode)."""
    if not isinstance(value, str) or len(value) > limit or not _encodable(value):
        raise AuthError("bad_claims")
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _time(value: object) -> float | None:
    """A NumericDate claim as a float, None if it is not a sane one."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not abs(value) < MAX_TIME:
        return None
    return float(value)


def claims_from_payload(
    payload: dict[str, Any], *, user_claim: str = "user_id", token_id: str = ""
) -> Claims:
    """The :class:`Claims` of a verified payload (``exp`` and the user claim present).

    Every value is checked for type and range here, at the handshake: a value that
    passes must be storable and encodable everywhere later (registry, logs, events).

    Args:
        user_claim: the claim naming the user: ``user_id`` (Go gateway), ``sub`` (most
            identity providers), ...

    Raises:
        AuthError: ``bad_claims`` when a claim has the wrong type or is out of range.
    """
    user_id = _text(payload.get(user_claim), 128)
    if not user_id:
        raise AuthError("bad_claims")
    character_id = payload.get("character_id")
    if character_id is not None and (
        not isinstance(character_id, int)
        or isinstance(character_id, bool)
        or character_id not in INT64
    ):
        raise AuthError("bad_claims")
    name = _text(payload.get("character_name") or user_id, MAX_NAME)
    scopes = _text(payload.get("scopes") or "", MAX_SCOPES)
    expires_at = _time(payload["exp"])
    if expires_at is None:
        raise AuthError("bad_claims")
    jti = payload.get("jti")
    return Claims(
        user_id=UserId(user_id),
        character_id=character_id,
        character_name=name,
        scopes=shared_set(tuple(scopes.split())),
        groups=_groups(payload.get("groups")),
        expires_at=expires_at,
        issued_at=_time(payload.get("iat")),
        token_id=jti
        if isinstance(jti, str) and 0 < len(jti) <= 128 and _encodable(jti)
        else token_id,
    )


def _groups(raw: object) -> tuple[Group, ...]:
    """The optional ``groups`` claim: a list of ids or of ``{id, name}``."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_GROUPS:
        raise AuthError("bad_claims")
    groups: list[Group] = []
    for item in raw:
        if isinstance(item, str | int) and not isinstance(item, bool):
            gid = _group_id(item)
            groups.append(Group(gid, gid))
        elif isinstance(item, dict) and isinstance(item.get("id"), str | int):
            name = item.get("name")
            gid = _group_id(item["id"])
            groups.append(Group(gid, _text(name, MAX_NAME) if isinstance(name, str) else gid))
        else:
            raise AuthError("bad_claims")
    return tuple(groups)


def _group_id(raw: str | int) -> GroupId:
    if isinstance(raw, bool) or (isinstance(raw, int) and raw not in INT64):
        raise AuthError("bad_claims")
    gid = _text(str(raw), MAX_GROUP_ID)
    if not gid:
        raise AuthError("bad_claims")
    return GroupId(gid)


def is_admin(claims: Claims, *, admin_scope: str, admin_users: frozenset[str]) -> bool:
    """An administrator holds the admin scope or is listed by user id."""
    return admin_scope in claims.scopes or claims.user_id in admin_users


@functools.lru_cache(maxsize=1024)
def shared_set(items: tuple[str, ...]) -> frozenset[str]:
    """One frozenset per distinct value: every connection keeps its scopes and token
    groups, mostly the same few sets (~200 bytes each)."""
    return frozenset(items)
