"""``roomcast listen``: print a gateway's live messages, one per line, across restarts.

Also the connection options that ``roomcast send`` shares.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from datetime import datetime
from typing import Any

import orjson

from roomcast.client import Client, ConnectionState, Message, normalize_url
from roomcast.exceptions import ConfigError

#: ANSI colours by message type; anything else is shown plain.
_COLOURS = {
    "error": "31",  # red
    "critical_alert": "1;31",
    "backend_status": "33",  # yellow
    "service_recovery": "32",
    "message": "32",  # green
    "custom_event": "35",  # magenta
    "room_joined": "36",  # cyan
    "room_left": "36",
    "room_update": "36",
    "system_notification": "34",  # blue
}
_DIM, _BOLD, _RESET = "\033[2m", "\033[1m", "\033[0m"


def register(sub: Any) -> None:
    """Add the ``listen`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "listen",
        help="print live messages",
        description="Connect to a gateway and print every message it sends, one per line; "
        "reconnects on its own when the gateway restarts. Ctrl-C to stop.",
    )
    add_connection_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print each envelope as raw JSON")
    parser.add_argument(
        "--type", action="append", default=[], help="only this message type (repeatable)"
    )
    parser.add_argument("--room", help="only messages of this room")
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the output (auto: on a terminal, unless NO_COLOR is set)",
    )
    parser.set_defaults(func=run)


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """URL and credentials, shared by ``listen`` and ``send``."""
    parser.add_argument(
        "url", help="gateway URL: ws(s)://host:port[/websocket/connect] (http(s) accepted)"
    )
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument("--token", help="JWT sent as Bearer [env ROOMCAST_TOKEN]")
    auth.add_argument("--cookie", help="JWT sent as the falcon_auth_token cookie")
    parser.add_argument("--origin", help="Origin header to send")


def make_client(args: argparse.Namespace, **options: Any) -> Client:
    """A client for the URL and credentials in ``args``."""
    # The command reports failures itself, in one line; without a handler of its own the
    # SDK's log records would reach stderr through logging's last-resort handler.
    logging.getLogger("roomcast.client").addHandler(logging.NullHandler())
    token = args.token or (None if args.cookie else os.environ.get("ROOMCAST_TOKEN"))
    try:
        url = normalize_url(args.url)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return Client(url, token=token, cookie=args.cookie, origin=args.origin, **options)


def run(args: argparse.Namespace) -> int:
    colour = args.color == "always" or (
        args.color == "auto" and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    )
    return asyncio.run(_listen(args, colour))


async def _listen(args: argparse.Namespace, colour: bool) -> int:
    client = make_client(args)
    client.on_state(lambda state: _status(state, client))
    stream = client.messages(*args.type)
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGTERM, lambda: asyncio.ensure_future(client.close())
        )
    client.start()
    try:
        async for message in stream:
            if args.room is None or message.room == args.room:
                line = message.to_json().decode() if args.json else format_line(message, colour)
                print(line, flush=True)
    finally:
        await client.close()
    return 0


def format_line(message: Message, colour: bool = False) -> str:
    """One readable line: time, type, room, sender, data."""
    stamp = _clock(message.timestamp)
    parts = [message.type]
    if message.room:
        parts.append(message.room)
    if message.from_:
        parts.append(f"from={message.from_[:8]}")
    data = orjson.dumps(dict(message.data)).decode()
    if not colour:
        return f"{stamp} {' '.join(parts)} {data}"
    code = _COLOURS.get(message.type)
    kind = f"\033[{code}m{message.type}{_RESET}" if code else message.type
    rest = [f"{_BOLD}{p}{_RESET}" if p == message.room else p for p in parts[1:]]
    return f"{_DIM}{stamp}{_RESET} {' '.join([kind, *rest])} {data}"


def _clock(timestamp: str | int | None) -> str:
    """HH:MM:SS of the server's timestamp (RFC 3339 or Unix ms), else of now."""
    try:
        if isinstance(timestamp, int):
            when = datetime.fromtimestamp(timestamp / 1000).astimezone()
        elif isinstance(timestamp, str):
            when = datetime.fromisoformat(timestamp.replace("Z", "+00:00")).astimezone()
        else:
            when = datetime.now().astimezone()
    except (ValueError, OverflowError, OSError):
        when = datetime.now().astimezone()
    return when.strftime("%H:%M:%S")


def _status(state: ConnectionState, client: Client) -> None:
    """Connection changes go to stderr, so stdout stays one line per message."""
    detail = f" ({client.connection_id})" if state is ConnectionState.CONNECTED else ""
    print(f"roomcast: {state.value}{detail}", file=sys.stderr, flush=True)
