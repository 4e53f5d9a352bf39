"""Token refresh of live connections: a new token replaces expiry, scopes and groups.

Two ways in, one effect:

- in-band, a ``system`` ``refresh`` carrying the new token (Bearer clients, the SDK);
- the browser route, which reads the fresh HttpOnly cookie and names the connections
  (:mod:`roomcast.server.tokens`); it publishes :class:`TokenRefreshed` so the instance
  holding each connection applies it.

A refresh must verify, be for the connection's user, and not be revoked; otherwise
it is refused and the connection keeps its old token (and closes when that expires).
"""

from __future__ import annotations

import logging

from roomcast import metrics
from roomcast.auth import Claims, TokenVerifier
from roomcast.broker.base import TokenRefreshed
from roomcast.exceptions import AuthError, StoreError
from roomcast.hub import LocalConnection
from roomcast.logs import log_event
from roomcast.membership.base import Group
from roomcast.node import Node
from roomcast.types import ConnId, GroupId, group_room, group_room_name

_log = logging.getLogger("roomcast.refresh")


class TokenRefresher:
    """Verifies refresh tokens and applies them to this instance's connections."""

    def __init__(self, node: Node, verifier: TokenVerifier) -> None:
        self.node = node
        self.verifier = verifier

    @classmethod
    def install(cls, node: Node, verifier: TokenVerifier) -> TokenRefresher:
        """A refresher that also applies the refreshes other instances publish."""
        refresher = cls(node, verifier)
        node.on_token_refreshed = refresher.apply_command
        return refresher

    async def check(self, token: str, user_id: str | None = None) -> Claims:
        """The claims of a token fit to refresh with.

        Raises:
            AuthError: a verification reason, ``other_user``, ``revoked`` or ``kicked``.
            StoreError: the denial store cannot be read.
        """
        claims = await self.verifier.verify(token)
        if user_id is not None and claims.user_id != user_id:
            raise AuthError("other_user")
        denied = await self.node.denials.check(claims)
        if denied is not None:
            raise AuthError(denied.reason)
        return claims

    async def refresh(self, conn: LocalConnection, token: str) -> Claims:
        """In-band refresh of ``conn``; counted and logged either way (never the token).

        Raises:
            AuthError: refused (see :meth:`check`); the connection is unchanged.
        """
        try:
            claims = await self.check(token, conn.user_id)
        except AuthError as exc:
            metrics.TOKEN_REFRESHES.labels(exc.reason).inc()
            log_event(_log, "refresh_refused", logging.INFO, conn=conn.id, user=conn.user_id,
                      reason=exc.reason)
            raise
        await self.apply(conn, grant_of(claims, (conn.id,)))
        return claims

    async def apply_command(self, command: TokenRefreshed) -> None:
        """Apply a refresh to the named local connections of its user."""
        local = self.node.hub.users.get(command.user_id, {})
        for conn_id in command.conn_ids:
            conn = local.get(conn_id)
            if conn is not None:
                await self.apply(conn, command)

    async def apply(self, conn: LocalConnection, grant: TokenRefreshed) -> None:
        """Take over the grant's expiry, scopes and token groups; rooms follow at once."""
        node = self.node
        async with node.user_lock(conn.user_id):
            conn.expires_at, conn.issued_at = grant.expires_at, grant.issued_at
            conn.token_id, conn.scopes = grant.token_id, frozenset(grant.scopes)
            fresh = {g.id: g for g in grant.groups}
            dropped = conn.token_groups - fresh.keys()
            conn.token_groups = frozenset(fresh)
            stored = await self._stored_groups(conn) if dropped else set()
            for gid in dropped:
                if gid not in stored:
                    conn.groups.pop(gid, None)
                    await node.leave_room(conn, group_room(gid), "token_refreshed")
            for gid, group in fresh.items():
                if gid not in conn.groups:
                    conn.groups[gid] = group
                    await node.join_room(conn, group_room(gid), group_room_name(group.name))
        if node.hub.connections.get(conn.id) is conn:  # closed meanwhile: no timers
            node.lifetimes.track(conn)
        metrics.TOKEN_REFRESHES.labels("ok").inc()
        log_event(_log, "token_refreshed", conn=conn.id, user=conn.user_id,
                  expires_at=int(grant.expires_at), groups=len(conn.token_groups))

    async def _stored_groups(self, conn: LocalConnection) -> set[GroupId]:
        """The user's groups in the store; none if it cannot be read (fail closed: a
        group the token no longer grants is left)."""
        try:
            return {g.id for g in await self.node.store.groups_of(conn.user_id)}
        except StoreError as exc:
            log_event(_log, "membership_store_failed", logging.WARNING, error=str(exc))
            return set()


def grant_of(claims: Claims, conn_ids: tuple[ConnId, ...]) -> TokenRefreshed:
    """What a verified token grants the named connections."""
    return TokenRefreshed(
        user_id=claims.user_id,
        conn_ids=conn_ids,
        expires_at=claims.expires_at,
        issued_at=claims.issued_at,
        token_id=claims.token_id,
        scopes=tuple(sorted(claims.scopes)),
        groups=tuple(Group(g.id, g.name) for g in claims.groups),
    )
