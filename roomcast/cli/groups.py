"""``roomcast groups``: manage group memberships.

Through a running gateway's API (so live connections move rooms at once), or,
when none answers at ``--url``, straight in the membership store.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import httpx

from roomcast import config
from roomcast.auth import mint_token
from roomcast.cli._secret import find_secret, rejected
from roomcast.membership import open_store
from roomcast.types import GroupId, UserId


def register(sub: Any) -> None:
    """Add ``groups add|remove|list``."""
    parser: argparse.ArgumentParser = sub.add_parser("groups", help="manage group memberships")
    parser.add_argument(
        "--url",
        default=os.environ.get("ROOMCAST_URL", "http://127.0.0.1:8080"),
        help="gateway base URL [env ROOMCAST_URL]",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("ROOMCAST_API_KEY"),
        help="X-API-Key of the gateway [env ROOMCAST_API_KEY]",
    )
    parser.add_argument(
        "--store",
        default=None,
        help="membership store used when no gateway answers "
        "(default: as `roomcast serve` would choose)",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add USER_ID to GROUP_ID")
    add.add_argument("user_id")
    add.add_argument("group_id")
    add.add_argument("--name", help="group display name (default: the id)")
    remove = actions.add_parser("remove", help="remove USER_ID from GROUP_ID")
    remove.add_argument("user_id")
    remove.add_argument("group_id")
    listing = actions.add_parser("list", help="list USER_ID's groups")
    listing.add_argument("user_id")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        return _via_api(args)
    except httpx.ConnectError:
        print(f"(no gateway at {args.url}; using the membership store directly)", file=sys.stderr)
        return asyncio.run(_via_store(args))


def _via_api(args: argparse.Namespace) -> int:
    base = f"{args.url.rstrip('/')}/websocket/users/{args.user_id}/groups"
    secret = None if args.api_key else find_secret()
    headers: dict[str, str] = {}
    if args.api_key:
        headers["X-API-Key"] = args.api_key
    elif secret is not None:
        scope = os.environ.get("ROOMCAST_ADMIN_SCOPE") or config.Settings.admin_scope
        token = mint_token(secret.value, "roomcast-cli", scopes=scope, ttl=60)
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(headers=headers, timeout=10) as client:
        if args.action == "add":
            resp = client.put(f"{base}/{args.group_id}", json={"name": args.name or args.group_id})
        elif args.action == "remove":
            resp = client.delete(f"{base}/{args.group_id}")
        else:
            resp = client.get(base)
    if resp.status_code == 401 and not args.api_key:
        why = _body(resp).get("reason") or _reason(resp)
        print(f"roomcast: {rejected(secret, args.url, str(why))}", file=sys.stderr)
        return 1
    if resp.status_code >= 400:
        print(f"roomcast: HTTP {resp.status_code}: {_reason(resp)}", file=sys.stderr)
        return 1
    body = resp.json()
    if args.action == "list":
        for group in body.get("groups", []):
            print(f"{group['id']}\t{group['name']}")
    else:
        print("changed" if body.get("changed", True) else "unchanged")
    return 0


def _body(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _reason(resp: httpx.Response) -> str:
    """The gateway's explanation of an error answer, not its raw JSON."""
    message = _body(resp).get("message")
    if isinstance(message, str):
        return message
    return resp.text.strip()[:200] or resp.reason_phrase


async def _via_store(args: argparse.Namespace) -> int:
    settings = config.load(None, dev_secret_ok=False)
    url = args.store or settings.membership_url or settings.redis_url or settings.database_url
    store = open_store(url or settings.sqlite_path,
                       cluster=settings.redis_cluster and url == settings.redis_url)
    await store.open()
    try:
        user = UserId(args.user_id)
        if args.action == "add":
            changed = await store.add(user, GroupId(args.group_id), args.name or args.group_id)
            print("changed" if changed else "unchanged")
        elif args.action == "remove":
            removed = await store.remove(user, GroupId(args.group_id))
            print("changed" if removed else "unchanged")
        else:
            for group in await store.groups_of(user):
                print(f"{group.id}\t{group.name}")
    finally:
        await store.close()
    return 0
