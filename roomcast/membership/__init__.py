"""Membership stores: which groups a user belongs to."""

from __future__ import annotations

from roomcast.exceptions import ConfigError
from roomcast.membership.base import Group, MembershipStore

__all__ = ["Group", "MembershipStore", "open_store"]


def open_store(url_or_path: str, *, cache_ttl: float = 30.0, timeout: float = 2.0,
               authorization: str | None = None, cluster: bool = False) -> MembershipStore:
    """The store for a URL or path (not yet opened: call ``await store.open()``).

    - ``sqlite://PATH`` or a plain path: a SQLite file (``sqlite:///var/lib/r.db``
      is absolute, ``sqlite://r.db`` relative; ``:memory:`` works too);
    - ``redis://`` or ``rediss://``: Redis (a node of a Redis Cluster with ``cluster``);
    - ``postgres://`` or ``postgresql://``: PostgreSQL;
    - ``http://`` or ``https://``: the application, a URL template with ``{user_id}``
      (read-only; ``cache_ttl``, ``timeout`` and ``authorization`` apply to it).

    Raises:
        ConfigError: empty value or unknown scheme.
    """
    value = url_or_path.strip()
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "sqlite", value
    scheme = scheme.lower()
    if scheme == "sqlite":
        if not rest:
            raise ConfigError("membership store: empty SQLite path")
        from roomcast.membership.sqlite import SqliteMembershipStore

        return SqliteMembershipStore(rest)
    if scheme in ("redis", "rediss"):
        from roomcast.membership.redis import RedisMembershipStore

        return RedisMembershipStore(value, cluster=cluster)
    if scheme in ("http", "https"):
        from roomcast.membership.http import HttpMembershipProvider

        return HttpMembershipProvider(value, cache_ttl=cache_ttl, timeout=timeout,
                                      authorization=authorization)
    if scheme in ("postgres", "postgresql"):
        from roomcast.membership.postgres import PostgresMembershipStore

        return PostgresMembershipStore(value)
    raise ConfigError(
        f"membership store: unknown scheme {scheme!r} in {_redact(value)!r}"
        " (use sqlite://, redis://, rediss://, postgres://, http(s):// or a file path)"
    )


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at:
        return url
    user = userinfo.partition(":")[0]
    return f"{scheme}://{user}:***@{host}"
