"""Who is connecting: JWT verification, token extraction, minting, Origin checks."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from roomcast.exceptions import AuthError
from roomcast.membership.base import Group
from roomcast.types import GroupId, UserId

COOKIE_NAME = "falcon_auth_token"
DEFAULT_ISSUER = "go-falcon"
ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class Claims:
    """The verified identity carried by a token."""

    user_id: UserId
    character_id: int | None
    character_name: str
    scopes: frozenset[str]
    groups: tuple[Group, ...]
    expires_at: float


def extract_token(headers: Mapping[str, str], cookies: Mapping[str, str]) -> str:
    """The JWT of a request: ``Authorization: Bearer`` first, then the cookie (as in Go)."""
    auth = headers.get("Authorization", "")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthError("malformed_authorization")
        return value.strip()
    token = cookies.get(COOKIE_NAME, "")
    if not token:
        raise AuthError("missing_token")
    return token


def decode_token(token: str, secret: str, *, issuer: str | None = None) -> Claims:
    """Verify an HS256 token (``exp`` required, ``iss`` checked when configured)."""
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=issuer,
            options={"require": ["exp", "user_id"], "verify_iss": issuer is not None},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("expired") from None
    except jwt.InvalidSignatureError:
        raise AuthError("bad_signature") from None
    except jwt.InvalidIssuerError:
        raise AuthError("bad_issuer") from None
    except jwt.InvalidAlgorithmError:
        raise AuthError("bad_algorithm") from None
    except jwt.MissingRequiredClaimError:
        raise AuthError("missing_claim") from None
    except jwt.InvalidTokenError:
        raise AuthError("malformed_token") from None
    return _claims(payload)


def _claims(payload: dict[str, Any]) -> Claims:
    user_id = payload.get("user_id")
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


def mint_token(
    secret: str,
    user_id: str,
    *,
    name: str | None = None,
    character_id: int | None = None,
    groups: Iterable[str] | None = None,
    scopes: str = "",
    ttl: float = 3600,
    issuer: str = DEFAULT_ISSUER,
) -> str:
    """A token in the Go gateway's format, for development, tests and backends."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "user_id": user_id,
        "character_id": character_id if character_id is not None else 0,
        "character_name": name or user_id,
        "scopes": scopes,
        "iat": now,
        "exp": now + int(ttl),
        "iss": issuer,
    }
    if groups is not None:
        claims["groups"] = list(groups)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def origin_allowed(origin: str | None, allowed: frozenset[str], own_origin: str) -> bool:
    """Go gateway flaw fixed: only listed origins (or our own) may open a browser socket.

    A request without Origin comes from a non-browser client and is allowed.
    """
    if origin is None:
        return True
    origin = origin.rstrip("/").lower()
    return origin == own_origin.lower() or origin in allowed or "*" in allowed


def is_admin(claims: Claims, *, admin_scope: str, admin_users: frozenset[str]) -> bool:
    """An administrator holds the admin scope or is listed by user id."""
    return admin_scope in claims.scopes or claims.user_id in admin_users
