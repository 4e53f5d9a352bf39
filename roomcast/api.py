"""Drive roomcast from an app backend: a client of its server HTTP API (httpx).

.. code-block:: python

    from roomcast.api import RoomcastAPI

    with RoomcastAPI("https://rt.example.com", api_key=KEY) as api:
        sent = api.send_to_user("alice", "notification", {"title": "Build done"})
        print(sent.recipients_count)
        api.add_to_group("alice", "blue", name="Blue team")

:class:`AsyncRoomcastAPI` has the same methods, as coroutines. Error answers
raise :class:`~roomcast.exceptions.ApiError` subclasses carrying the server's
sentence: ``ApiAuthError``, ``ApiNotFound``, ``ApiInvalid``, ``ApiUnavailable``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

import roomcast
from roomcast.exceptions import ApiAuthError, ApiError, ApiInvalid, ApiNotFound, ApiUnavailable
from roomcast.server.admin.bodies import (
    Connection,
    ConnectionList,
    ConnectionOne,
    Disconnected,
    Group,
    GroupList,
    Membership,
    Revoked,
    Room,
    RoomList,
    RoomOne,
    Sent,
    Status,
)

__all__ = ["AsyncRoomcastAPI", "Connection", "Group", "Membership", "Room", "RoomcastAPI",
           "Sent", "Status"]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Data = Mapping[str, Any] | None

_ERRORS: dict[int, type[ApiError]] = {
    401: ApiAuthError, 403: ApiAuthError, 404: ApiNotFound, 413: ApiInvalid, 415: ApiInvalid,
    422: ApiInvalid, 502: ApiUnavailable, 503: ApiUnavailable, 504: ApiUnavailable,
}


@dataclass(frozen=True, slots=True)
class _Call(Generic[T]):
    """One API call, independent of sync or async I/O."""

    method: str
    path: str
    parse: Callable[[bytes], T]
    json: Any = None
    params: dict[str, str | int] | None = None
    #: Statuses whose body is the result (older servers answered status with 503).
    ok: frozenset[int] = frozenset({200})


def _seg(value: str) -> str:
    return quote(value, safe=":@")


def _model(model: type[M]) -> Callable[[bytes], M]:
    return model.model_validate_json


def _send(path: str, type: str, data: Data) -> _Call[Sent]:
    # 202: nobody was connected, the message was stored in the room's history.
    return _Call("POST", path, _model(Sent), json={"type": type, "data": dict(data or {})},
                 ok=frozenset({200, 202}))


def _params(**values: str | int | None) -> dict[str, str | int]:
    return {k: v for k, v in values.items() if v is not None}


def _finish(call: _Call[T], response: httpx.Response) -> T:
    """The call's result, or the ApiError its answer describes."""
    if response.status_code not in call.ok:
        raise _error(response)
    try:
        return call.parse(response.content)
    except ValidationError as exc:
        raise ApiError(f"unexpected answer to {call.method} {call.path}: {exc}",
                       status=response.status_code, error="bad_response") from None


def _error(response: httpx.Response) -> ApiError:
    """The exception an error answer describes.

    Reads RFC 9457 problem details as roomcast and the Go gateway write them
    (``detail``, ``errors: [{location, message}]``, roomcast's ``code`` and
    ``reason``), and the ``{error, message, details}`` bodies of older servers.
    """
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    error, details, reason = "http_error", None, None
    message = response.text.strip()[:200] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        message = body["detail"]
        error = _text(body.get("code")) or _slug(_text(body.get("title")) or "") or error
        details = [_detail(e) for e in body.get("errors") or [] if isinstance(e, dict)] or None
        reason = _text(body.get("reason"))
    elif isinstance(body, dict) and isinstance(body.get("message"), str):
        error, message = str(body.get("error", "error")), body["message"]
        details = body.get("details") if isinstance(body.get("details"), list) else None
        reason = _text(body.get("reason"))
    cls = _ERRORS.get(status, ApiError)
    return cls(f"HTTP {status}: {message}", status=status, error=error, reason=reason,
               details=details)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _slug(title: str) -> str:
    return "_".join(title.lower().replace("-", " ").split())


def _detail(error: dict[str, Any]) -> dict[str, Any]:
    """huma's ``{location, message, value}``, also under the older name ``field``."""
    out = {"field": str(error.get("location", "")), "message": str(error.get("message", ""))}
    out["location"] = out["field"]
    if "value" in error:
        out["value"] = error["value"]
    return out


class _Calls:
    """The API's calls; the two clients run them with their own I/O."""

    @staticmethod
    def broadcast(type: str, data: Data) -> _Call[Sent]:
        return _send("/websocket/broadcast", type, data)

    @staticmethod
    def send_to_user(user_id: str, type: str, data: Data) -> _Call[Sent]:
        return _send(f"/websocket/users/{_seg(user_id)}/message", type, data)

    @staticmethod
    def send_to_room(room_id: str, type: str, data: Data) -> _Call[Sent]:
        return _send(f"/websocket/rooms/{_seg(room_id)}/message", type, data)

    @staticmethod
    def send_to_connection(conn_id: str, type: str, data: Data) -> _Call[Sent]:
        return _send(f"/websocket/connections/{_seg(conn_id)}/message", type, data)

    @staticmethod
    def update_profile(user_id: str, profile: Mapping[str, Any],
                       character_id: int | None) -> _Call[Sent]:
        return _Call("POST", f"/websocket/users/{_seg(user_id)}/profile", _model(Sent),
                     json={"character_id": character_id, "profile": dict(profile)})

    @staticmethod
    def add_to_group(user_id: str, group_id: str, name: str | None) -> _Call[Membership]:
        return _Call("PUT", f"/websocket/users/{_seg(user_id)}/groups/{_seg(group_id)}",
                     _model(Membership), json={"name": name} if name is not None else {})

    @staticmethod
    def remove_from_group(user_id: str, group_id: str) -> _Call[Membership]:
        return _Call("DELETE", f"/websocket/users/{_seg(user_id)}/groups/{_seg(group_id)}",
                     _model(Membership))

    @staticmethod
    def groups(user_id: str) -> _Call[list[Group]]:
        return _Call("GET", f"/websocket/users/{_seg(user_id)}/groups",
                     lambda raw: GroupList.model_validate_json(raw).groups)

    @staticmethod
    def connections(user_id: str | None, character_id: int | None,
                    room_id: str | None) -> _Call[list[Connection]]:
        return _Call("GET", "/websocket/connections",
                     lambda raw: ConnectionList.model_validate_json(raw).connections,
                     params=_params(user_id=user_id, character_id=character_id, room_id=room_id))

    @staticmethod
    def connection(conn_id: str) -> _Call[Connection]:
        return _Call("GET", f"/websocket/connections/{_seg(conn_id)}",
                     lambda raw: ConnectionOne.model_validate_json(raw).connection)

    @staticmethod
    def disconnect(conn_id: str, ban_seconds: float | None, ban: str) -> _Call[Disconnected]:
        body = {"ban_seconds": ban_seconds, "ban": ban} if ban_seconds is not None else None
        return _Call("POST", f"/websocket/connections/{_seg(conn_id)}/disconnect",
                     _model(Disconnected), json=body)

    @staticmethod
    def revoke_user(user_id: str) -> _Call[Revoked]:
        return _Call("POST", f"/websocket/users/{_seg(user_id)}/revoke", _model(Revoked))

    @staticmethod
    def rooms(type: str | None, member_id: str | None) -> _Call[list[Room]]:
        return _Call("GET", "/websocket/rooms",
                     lambda raw: RoomList.model_validate_json(raw).rooms,
                     params=_params(type=type, member_id=member_id))

    @staticmethod
    def room(room_id: str) -> _Call[Room]:
        return _Call("GET", f"/websocket/rooms/{_seg(room_id)}",
                     lambda raw: RoomOne.model_validate_json(raw).room)

    @staticmethod
    def status() -> _Call[Status]:
        return _Call("GET", "/websocket/status", _model(Status), ok=frozenset({200, 503}))


def _headers(api_key: str | None, token: str | None) -> dict[str, str]:
    headers = {"User-Agent": f"roomcast-api/{roomcast.__version__}",
               "Accept": "application/json"}
    if api_key:
        headers["X-API-Key"] = api_key
    elif token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _unreachable(call: _Call[Any], exc: httpx.HTTPError) -> ApiUnavailable:
    return ApiUnavailable(f"cannot reach roomcast for {call.method} {call.path}: "
                          f"{exc or type(exc).__name__}", status=None, error="unreachable")


class RoomcastAPI:
    """Synchronous client; give ``api_key`` (app backends) or an admin's ``token``.

    Raises:
        ApiError: on every error answer (see the module docstring).
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, token: str | None = None,
                 timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout,
                                  headers=_headers(api_key, token), transport=transport)

    def _run(self, call: _Call[T]) -> T:
        try:
            response = self._http.request(call.method, call.path, json=call.json,
                                          params=call.params)
        except httpx.TransportError as exc:
            raise _unreachable(call, exc) from exc
        return _finish(call, response)

    def broadcast(self, type: str, data: Data = None) -> Sent:
        """Send to every connection of the cluster."""
        return self._run(_Calls.broadcast(type, data))

    def send_to_user(self, user_id: str, type: str, data: Data = None) -> Sent:
        """Send to every connection of a user (``data.user_id`` is set to ``user_id``)."""
        return self._run(_Calls.send_to_user(user_id, type, data))

    def send_to_room(self, room_id: str, type: str, data: Data = None) -> Sent:
        """Send to the members of ``user:ID`` or ``group:ID`` (none is not an error)."""
        return self._run(_Calls.send_to_room(room_id, type, data))

    def send_to_connection(self, conn_id: str, type: str, data: Data = None) -> Sent:
        return self._run(_Calls.send_to_connection(conn_id, type, data))

    def update_profile(self, user_id: str, profile: Mapping[str, Any],
                       character_id: int | None = None) -> Sent:
        """Send ``user_profile_update`` to the user's connections."""
        return self._run(_Calls.update_profile(user_id, profile, character_id))

    def add_to_group(self, user_id: str, group_id: str, name: str | None = None) -> Membership:
        """Add a membership; live connections join the room. Repeats change nothing."""
        return self._run(_Calls.add_to_group(user_id, group_id, name))

    def remove_from_group(self, user_id: str, group_id: str) -> Membership:
        return self._run(_Calls.remove_from_group(user_id, group_id))

    def groups(self, user_id: str) -> list[Group]:
        return self._run(_Calls.groups(user_id))

    def connections(self, *, user_id: str | None = None, character_id: int | None = None,
                    room_id: str | None = None) -> list[Connection]:
        return self._run(_Calls.connections(user_id, character_id, room_id))

    def connection(self, conn_id: str) -> Connection:
        return self._run(_Calls.connection(conn_id))

    def disconnect(self, conn_id: str, *, ban_seconds: float | None = None,
                   ban: str = "token") -> Disconnected:
        """Close a connection with code 3500 (its client does not reconnect by itself).

        With ``ban_seconds`` its token (``ban="token"``) or its user (``ban="user"``) is
        refused at the handshake that long: the kick sticks.
        """
        return self._run(_Calls.disconnect(conn_id, ban_seconds, ban))

    def revoke_user(self, user_id: str) -> Revoked:
        """Log a user out everywhere: close every connection (3403), refuse older tokens."""
        return self._run(_Calls.revoke_user(user_id))

    def rooms(self, *, type: str | None = None, member_id: str | None = None) -> list[Room]:
        return self._run(_Calls.rooms(type, member_id))

    def room(self, room_id: str) -> Room:
        return self._run(_Calls.room(room_id))

    def status(self) -> Status:
        return self._run(_Calls.status())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class AsyncRoomcastAPI:
    """Asynchronous client: the methods of :class:`RoomcastAPI`, as coroutines."""

    def __init__(self, base_url: str, *, api_key: str | None = None, token: str | None = None,
                 timeout: float = 10.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout,
                                       headers=_headers(api_key, token), transport=transport)

    async def _run(self, call: _Call[T]) -> T:
        try:
            response = await self._http.request(call.method, call.path, json=call.json,
                                                params=call.params)
        except httpx.TransportError as exc:
            raise _unreachable(call, exc) from exc
        return _finish(call, response)

    async def broadcast(self, type: str, data: Data = None) -> Sent:
        return await self._run(_Calls.broadcast(type, data))

    async def send_to_user(self, user_id: str, type: str, data: Data = None) -> Sent:
        return await self._run(_Calls.send_to_user(user_id, type, data))

    async def send_to_room(self, room_id: str, type: str, data: Data = None) -> Sent:
        return await self._run(_Calls.send_to_room(room_id, type, data))

    async def send_to_connection(self, conn_id: str, type: str, data: Data = None) -> Sent:
        return await self._run(_Calls.send_to_connection(conn_id, type, data))

    async def update_profile(self, user_id: str, profile: Mapping[str, Any],
                             character_id: int | None = None) -> Sent:
        return await self._run(_Calls.update_profile(user_id, profile, character_id))

    async def add_to_group(self, user_id: str, group_id: str,
                           name: str | None = None) -> Membership:
        return await self._run(_Calls.add_to_group(user_id, group_id, name))

    async def remove_from_group(self, user_id: str, group_id: str) -> Membership:
        return await self._run(_Calls.remove_from_group(user_id, group_id))

    async def groups(self, user_id: str) -> list[Group]:
        return await self._run(_Calls.groups(user_id))

    async def connections(self, *, user_id: str | None = None, character_id: int | None = None,
                          room_id: str | None = None) -> list[Connection]:
        return await self._run(_Calls.connections(user_id, character_id, room_id))

    async def connection(self, conn_id: str) -> Connection:
        return await self._run(_Calls.connection(conn_id))

    async def disconnect(self, conn_id: str, *, ban_seconds: float | None = None,
                         ban: str = "token") -> Disconnected:
        return await self._run(_Calls.disconnect(conn_id, ban_seconds, ban))

    async def revoke_user(self, user_id: str) -> Revoked:
        return await self._run(_Calls.revoke_user(user_id))

    async def rooms(self, *, type: str | None = None,
                    member_id: str | None = None) -> list[Room]:
        return await self._run(_Calls.rooms(type, member_id))

    async def room(self, room_id: str) -> Room:
        return await self._run(_Calls.room(room_id))

    async def status(self) -> Status:
        return await self._run(_Calls.status())

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
