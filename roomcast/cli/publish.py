"""``roomcast publish``: send one message through a running gateway's server API.

Uses :mod:`roomcast.api`, so the message reaches every instance of the cluster
and the answer says how many connections it reached.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from roomcast import config
from roomcast.api import RoomcastAPI, Sent
from roomcast.auth import mint_token
from roomcast.cli._args import json_object
from roomcast.cli._secret import rejected, require_secret
from roomcast.exceptions import ApiError, RoomcastError
from roomcast.protocol.envelope import SERVER_API_TYPES


def register(sub: Any) -> None:
    """Add the ``publish`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "publish",
        help="send a message to a room, a user, a connection or everyone",
        description="Send one message through a running gateway's server API. Credentials: "
        "--api-key, else --token, else an administrator token minted with JWT_SECRET "
        "(else with the development secret of the `roomcast serve` started in this "
        "directory or a parent).",
    )
    parser.add_argument("--url", default=os.environ.get("ROOMCAST_URL", "http://127.0.0.1:8080"),
                        help="gateway base URL [env ROOMCAST_URL]")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--room", metavar="ROOM_ID", help="a room: user:ID or group:ID")
    target.add_argument("--user", metavar="USER_ID", help="every connection of a user")
    target.add_argument("--connection", metavar="CONN_ID", help="one connection")
    target.add_argument("--all", action="store_true", help="every connection")
    parser.add_argument("--type", default="message", choices=SERVER_API_TYPES, metavar="TYPE",
                        help="message type: " + ", ".join(SERVER_API_TYPES) + " [message]")
    parser.add_argument("--data", default="{}", type=json_object, metavar="JSON",
                        help='the data object, e.g. \'{"text": "hi"}\' [{}]')
    parser.add_argument("--api-key", default=os.environ.get("ROOMCAST_API_KEY"),
                        help="X-API-Key of the gateway [env ROOMCAST_API_KEY]")
    parser.add_argument("--token", default=os.environ.get("ROOMCAST_TOKEN"),
                        help="an administrator's JWT [env ROOMCAST_TOKEN]")
    parser.add_argument("--json", action="store_true", help="print the full answer as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    secret = None
    token = args.token
    if not (args.api_key or args.token):
        secret = require_secret()
        scope = os.environ.get("ROOMCAST_ADMIN_SCOPE") or config.Settings.admin_scope
        token = mint_token(secret.value, "roomcast-cli", scopes=scope, ttl=60)
    try:
        with RoomcastAPI(args.url, api_key=args.api_key, token=token) as api:
            sent = _send(api, args)
    except ApiError as exc:
        if exc.status == 401 and secret is not None:
            raise RoomcastError(rejected(secret, args.url, exc.reason or str(exc))) from None
        raise
    if args.json:
        sys.stdout.write(sent.model_dump_json(by_alias=True, exclude_none=True) + "\n")
    else:
        stored = f", stored in {sent.stored.room}" if sent.stored is not None else ""
        print(f"sent {sent.message_id} to {sent.recipients_count} connection(s){stored}")
    return 0


def _send(api: RoomcastAPI, args: argparse.Namespace) -> Sent:
    if args.room is not None:
        return api.send_to_room(args.room, args.type, args.data)
    if args.user is not None:
        return api.send_to_user(args.user, args.type, args.data)
    if args.connection is not None:
        return api.send_to_connection(args.connection, args.type, args.data)
    return api.broadcast(args.type, args.data)
