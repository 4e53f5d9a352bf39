"""``roomcast send``: send one message and print the gateway's reply."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from roomcast.cli._args import json_object
from roomcast.cli.listen import add_connection_arguments, make_client
from roomcast.client import AckTimeout, ConnectTimeout, ServerError


def register(sub: Any) -> None:
    """Add the ``send`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "send",
        help="send one message and print the ack",
        description="Connect, send one message, print the gateway's reply (JSON) and exit: "
        "0 when acknowledged, 1 on an error reply, a timeout or a refused connection.",
    )
    add_connection_arguments(parser)
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--room", help="room to send to, e.g. group:ops")
    target.add_argument("--to", help="connection id to send to")
    parser.add_argument(
        "--type", default="message", help="message type: message (default), custom_event, ..."
    )
    parser.add_argument(
        "--data", type=json_object, default={}, help='JSON object, e.g. \'{"text": "hi"}\''
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the reply (default 10)"
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        help="seconds to keep trying to connect (default 10)",
    )
    parser.set_defaults(func=run)




def run(args: argparse.Namespace) -> int:
    return asyncio.run(_send(args))


async def _send(args: argparse.Namespace) -> int:
    client = make_client(args, heartbeat_interval=None)
    try:
        try:
            async with asyncio.timeout(args.connect_timeout):
                await client.connect()
        except TimeoutError:
            raise ConnectTimeout(
                f"could not connect to {client.url} within {args.connect_timeout:g} s"
            ) from None
        try:
            reply = await client.send(
                args.type, args.data, room=args.room, to=args.to, timeout=args.timeout
            )
        except ServerError as exc:
            print(f"roomcast: the gateway refused the message: {exc}", file=sys.stderr)
            return 1
        except AckTimeout:
            print(f"roomcast: no reply within {args.timeout:g} s", file=sys.stderr)
            return 1
        print(reply.to_json().decode(), flush=True)
        return 0
    finally:
        await client.close()
