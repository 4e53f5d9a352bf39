"""The admin API's operations: one table for the router and the OpenAPI spec."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel

from roomcast import metrics
from roomcast.exceptions import BrokerError, StoreError, StoreReadOnly
from roomcast.logs import log_event
from roomcast.server.admin import actions, bodies, history, listings
from roomcast.server.admin.guard import Caller, authorize
from roomcast.server.admin.inputs import receive_body
from roomcast.server.admin.problems import ERROR_SCHEMA, PROBLEM_JSON, Problem, with_schema
from roomcast.server.state import gateway

_log = logging.getLogger("roomcast.admin")

AdminHandler = Callable[[web.Request, Caller], Coroutine[Any, Any, web.Response]]


@dataclass(frozen=True, slots=True)
class Operation:
    """One endpoint: how it is routed and how the spec describes it."""

    method: str
    path: str
    handler: AdminHandler
    operation_id: str
    summary: str
    tag: str
    response: type[BaseModel]
    description: str = ""
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    #: Error statuses besides 401/403/422 that the operation may answer.
    errors: tuple[int, ...] = ()


_U = "/websocket/users/{user_id}"
_SEND = "Body `{type, data}`; `type` is one of the ten Go gateway types."
_NOBODY = (" With no connection anywhere in the cluster the answer is 404, as in Go, unless "
           "the room keeps history: then 202 with `stored`.")

OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/websocket/connections", listings.list_connections, "listConnections",
              "List connections, cluster-wide", "connections", bodies.ConnectionList,
              query=bodies.ConnectionsQuery),
    Operation("GET", "/websocket/connections/{connection_id}", listings.get_connection,
              "getConnection", "One connection", "connections", bodies.ConnectionOne,
              errors=(404,)),
    Operation("POST", "/websocket/connections/{connection_id}/message",
              actions.message_connection, "messageConnection", "Send to one connection",
              "messages", bodies.Sent, description=_SEND, body=bodies.MessageBody,
              errors=(404, 503, 504)),
    Operation("POST", "/websocket/connections/{connection_id}/disconnect", actions.disconnect,
              "disconnectConnection",
              "Close a connection (3500, no auto-reconnect; or 1001 with reconnect=true)",
              "connections", bodies.Disconnected, query=bodies.DisconnectQuery,
              description="With `ban_seconds` the kick sticks: the connection's token "
              "(`ban: token`, default) or every token of its user (`ban: user`, which closes "
              "all of the user's connections) is refused at the handshake (403, reason "
              "`kicked`, `Retry-After`) until then, on every instance.",
              body=bodies.DisconnectBody, body_required=False, errors=(404, 503)),
    Operation("GET", "/websocket/rooms", listings.list_rooms, "listRooms",
              "List rooms, cluster-wide", "rooms", bodies.RoomList, query=bodies.RoomsQuery),
    Operation("GET", "/websocket/rooms/{room_id}", listings.get_room, "getRoom", "One room",
              "rooms", bodies.RoomOne, errors=(404,)),
    Operation("GET", "/websocket/rooms/{room_id}/history", history.room_history,
              "getRoomHistory", "A room's stored publications", "rooms", bodies.HistoryPage,
              description="The room's stream: publications after `since` (of `epoch`), "
              "oldest first or with `reverse` newest first, and the stream's current epoch "
              "and offset. 404 when the room keeps no history.",
              query=bodies.HistoryQuery, errors=(404, 503)),
    Operation("POST", "/websocket/rooms/{room_id}/message", actions.message_room, "messageRoom",
              "Send to a room's members", "messages", bodies.Sent,
              description=_SEND + _NOBODY, body=bodies.MessageBody, errors=(404, 503, 504)),
    Operation("POST", "/websocket/broadcast", actions.broadcast, "broadcast",
              "Send to every connection", "messages", bodies.Sent, description=_SEND,
              body=bodies.MessageBody, errors=(503, 504)),
    Operation("POST", f"{_U}/message", actions.message_user, "messageUser",
              "Send to every connection of a user", "messages", bodies.Sent,
              description=_SEND + " `data.user_id` is set to the user (the Go gateway routes "
              "user messages by it); a different one is refused." + _NOBODY,
              body=bodies.MessageBody, errors=(404, 503, 504)),
    Operation("POST", f"{_U}/profile", actions.profile, "updateProfile",
              "Send user_profile_update to a user's connections", "users", bodies.Sent,
              body=bodies.ProfileBody, errors=(503, 504)),
    Operation("POST", f"{_U}/revoke", actions.revoke, "revokeUser",
              "Log a user out everywhere", "users", bodies.Revoked,
              description="Closes every connection of the user on every instance with 3403 "
              "(do not reconnect with this token) and refuses, at the handshake and at "
              "refresh, the user's tokens issued (`iat`) at or before now, until "
              "`ROOMCAST_REVOCATION_TTL`. Tokens issued later work.",
              errors=(503,)),
    Operation("GET", f"{_U}/groups", listings.list_groups, "listGroups",
              "A user's group memberships", "users", bodies.GroupList, errors=(503,)),
    Operation("PUT", f"{_U}/groups/{{group_id}}", actions.add_membership, "addMembership",
              "Add a user to a group", "users", bodies.Membership,
              description="Moves every live connection of the user into `group:{group_id}` "
              "(room_joined, room_update, group_membership_change). Idempotent: a repeat "
              "answers `changed: false` and sends nothing.",
              body=bodies.MembershipBody, body_required=False, errors=(409, 503)),
    Operation("DELETE", f"{_U}/groups/{{group_id}}", actions.remove_membership,
              "removeMembership", "Remove a user from a group", "users", bodies.Membership,
              description="Takes every live connection of the user out of `group:{group_id}`. "
              "Idempotent: removing an absent membership answers `changed: false`.",
              errors=(409, 503)),
)


async def _bounded(op: Operation, call: Coroutine[Any, Any, web.Response],
                   timeout: float) -> web.Response:
    """The call's answer, or 503 after ``timeout`` s (a Redis that hangs, not down).

    The call is not cancelled: a change half made (stored, not yet announced to the
    instances) completes when the store answers; its outcome is logged.
    """
    # One future and one timer: wait_for(shield(task)) made three futures, a partial
    # and four callbacks per request. Cancelling the request leaves the task running.
    loop = asyncio.get_running_loop()
    task: asyncio.Task[web.Response] = loop.create_task(call)
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    task.add_done_callback(wake)
    timer = loop.call_later(timeout, wake)
    try:
        await waiter
    finally:
        timer.cancel()
        task.remove_done_callback(wake)
    if task.done():
        return task.result()
    task.add_done_callback(lambda t: _late(op, t))
    raise Problem(503, "unavailable",
                  f"no answer from the store within {timeout:g} s; a change may still be "
                  "applied when it answers (repeating it is safe)",
                  headers={"Retry-After": "1"})


def _late(op: Operation, task: asyncio.Future[web.Response]) -> None:
    exc = None if task.cancelled() else task.exception()
    log_event(_log, "admin_late", logging.WARNING, op=op.operation_id,
              outcome="failed" if exc is not None else "done", error=str(exc or ""))


def _endpoint(op: Operation) -> Handler:
    """Authorize, run, and turn every failure into a problem+json answer (as huma does)."""

    # Label lookups cost more than the increments: each child is looked up once.
    seconds = None
    requests: dict[int, Any] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        nonlocal seconds
        started = time.perf_counter()
        schema = op.response.__name__
        try:
            gw = gateway(request)
            caller = await authorize(request, gw.settings, gw.verifier)
            if request.body_exists and not request.content.is_eof():
                # A body still arriving is read here, within its own deadline: the store
                # timeout below is no measure of a slow sender, and a body still arriving
                # when it struck was read by two tasks at once.
                await receive_body(request, limit=gw.settings.max_message_size)
            response = await _bounded(op, op.handler(request, caller), gw.settings.store_timeout)
        except Problem as problem:
            response, schema = problem.response(), ERROR_SCHEMA
        except StoreReadOnly as exc:
            response, schema = Problem(409, "read_only", str(exc)).response(), ERROR_SCHEMA
        except (BrokerError, StoreError) as exc:
            # The error may name Redis or the database by address: logs only.
            log_event(_log, "admin_unavailable", logging.WARNING, op=op.operation_id,
                      error=str(exc))
            what = "the membership store" if isinstance(exc, StoreError) else "Redis"
            response = Problem(503, "unavailable", f"{what} is unavailable; try again later",
                               headers={"Retry-After": "1"}).response()
            schema = ERROR_SCHEMA
        except Exception:
            log_event(_log, "admin_failed", logging.ERROR, op=op.operation_id, exc_info=True)
            response, schema = Problem(500, "internal", "internal error").response(), ERROR_SCHEMA
        if response.content_type == PROBLEM_JSON:
            schema = ERROR_SCHEMA
        status = response.status
        counter = requests.get(status)
        if counter is None:
            counter = requests[status] = metrics.API_REQUESTS.labels(op.operation_id, str(status))
        counter.inc()
        if seconds is None:
            seconds = metrics.API_SECONDS.labels(op.operation_id)
        seconds.observe(time.perf_counter() - started)
        return with_schema(request, response, schema)

    handle.__name__ = op.operation_id
    return handle


def add_routes(app: web.Application, prefix: str = "") -> None:
    """The operations, under ``prefix`` (``API_PREFIX``)."""
    for op in OPERATIONS:
        app.router.add_route(op.method, prefix + op.path, _endpoint(op), name=op.operation_id)
