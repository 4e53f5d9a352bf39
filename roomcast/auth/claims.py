"""The claims roomcast reads from a verified token, and who counts as an administrator."""

from __future__ import annotations

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


def claims_from_payload(
    payload: dict[str, Any], *, user_claim: str = "user_id", token_id: str = ""
) -> Claims:
    """The :class:`Claims` of a verified payload (``exp`` and the user claim present).

    Args:
        user_claim: the claim naming the user: ``user_id`` (Go gateway), ``sub`` (most
            identity providers), ...

    Raises:
        AuthError: ``bad_claims`` when a claim has the wrong type.
    """
    user_id = payload.get(user_claim)
    if not isinstance(user_id, str) or not 0 < len(user_id) <= 128:
        raise AuthError("bad_claims")
    character_id = payload.get("character_id")
    if character_id is not None and (
        not isinstance(character_id, int) or isinstance(character_id, bool)
    ):
        raise AuthError("bad_claims")
    name = payload.get("character_name") or user_id
    scopes = payload.get("scopes") or ""
    if not isinstance(name, str) or not isinstance(scopes, str):
        raise AuthError("bad_claims")
    return Claims(
        user_id=UserId(user_id),
        character_id=character_id,
        character_name=name,
        scopes=frozenset(scopes.split()),
        groups=_groups(payload.get("groups")),
        expires_at=float(payload["exp"]),
        issued_at=float(iat) if isinstance(iat := payload.get("iat"), int | float) else None,
        token_id=jti if isinstance(jti := payload.get("jti"), str) and 0 < len(jti) <= 128
        else token_id,
    )


def _groups(raw: object) -> tuple[Group, ...]:
    """The optional ``groups`` claim: a list of ids or of ``{id, name}``."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise AuthError("bad_claims")
    groups: list[Group] = []
    for item in raw:
        if isinstance(item, str | int) and not isinstance(item, bool):
            groups.append(Group(GroupId(str(item)), str(item)))
        elif isinstance(item, dict) and isinstance(item.get("id"), str | int):
            name = item.get("name")
            gid = str(item["id"])
            groups.append(Group(GroupId(gid), name if isinstance(name, str) else gid))
        else:
            raise AuthError("bad_claims")
    return tuple(groups)


def is_admin(claims: Claims, *, admin_scope: str, admin_users: frozenset[str]) -> bool:
    """An administrator holds the admin scope or is listed by user id."""
    return admin_scope in claims.scopes or claims.user_id in admin_users
