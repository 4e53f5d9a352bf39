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


def _headers(args: argparse.Namespace) -> dict[str, str]:
    if args.api_key:
        return {"X-API-Key": args.api_key}
    settings = config.load(None)
    token = mint_token(
        settings.jwt_secret or "", "roomcast-cli", scopes=settings.admin_scope, ttl=60
    )
    return {"Authorization": f"Bearer {token}"}


def _via_api(args: argparse.Namespace) -> int:
    base = f"{args.url.rstrip('/')}/websocket/users/{args.user_id}/groups"
    with httpx.Client(headers=_headers(args), timeout=10) as client:
        if args.action == "add":
            resp = client.put(f"{base}/{args.group_id}", json={"name": args.name or args.group_id})
        elif args.action == "remove":
            resp = client.delete(f"{base}/{args.group_id}")
        else:
            resp = client.get(base)
    if resp.status_code >= 400:
        print(f"roomcast: {resp.status_code} {resp.text.strip()}", file=sys.stderr)
        return 1
    body = resp.json()
    if args.action == "list":
        for group in body.get("groups", []):
            print(f"{group['id']}\t{group['name']}")
    else:
        print("changed" if body.get("changed", True) else "unchanged")
    return 0


async def _via_store(args: argparse.Namespace) -> int:
    settings = config.load(None)
    url = args.store or settings.membership_url or settings.redis_url or settings.database_url
    store = open_store(url or settings.sqlite_path)
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
