"""``roomcast publish`` end to end: a real process, a real gateway, a real WebSocket peer."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from tests.admin.support import ADMIN_SCOPE, API_KEY, uid
from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token
from tests.helpers.ws import connect_peer


async def publish(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("ROOMCAST_API_KEY", "ROOMCAST_TOKEN", "ROOMCAST_URL")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "roomcast", "publish", *args, env={**clean, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_publish_to_each_target(admin_gw: GatewayProcess) -> None:
    user, group = uid("cli"), uid("grp")
    peer = await connect_peer(admin_gw, user, groups=[group])
    url = ["--url", admin_gw.base_url]

    code, out, err = await publish(*url, "--user", user, "--type", "notification",
                                   "--data", '{"text": "from the CLI"}', "--api-key", API_KEY)
    assert code == 0, err
    msg = await peer.recv()
    # User messages go through the user's stream (history is on by default).
    assert out == f"sent {msg['id']} to 1 connection(s), stored in user:{user}\n"
    assert msg["type"] == "notification"
    assert msg["data"] == {"text": "from the CLI", "user_id": user}

    # The key from the environment, the full answer as JSON.
    code, out, err = await publish(*url, "--room", f"group:{group}", "--json",
                                   env={"ROOMCAST_API_KEY": API_KEY})
    assert code == 0, err
    answer = json.loads(out)
    msg = await peer.recv()
    assert answer["envelope"] == msg and answer["room_id"] == f"group:{group}"
    assert msg["type"] == "message" and msg["room"] == f"group:{group}" and msg["data"] == {}
    assert answer["recipients_count"] == 1 and answer["success"] is True

    token = make_token(admin_gw.secret, "cli-admin", scopes=ADMIN_SCOPE)
    code, out, err = await publish(*url, "--connection", peer.conn_id, "--type", "presence",
                                   "--token", token)
    assert code == 0, err
    assert (await peer.recv())["to"] == peer.conn_id

    # Neither key nor token: an admin token minted with the gateway's JWT_SECRET.
    code, out, err = await publish(*url, "--all", "--type", "system_notification",
                                   "--data", '{"maintenance": true}',
                                   env={"JWT_SECRET": admin_gw.secret})
    assert code == 0, err
    assert (await peer.recv())["data"] == {"maintenance": True}
    await peer.close()


async def test_publish_errors_are_one_clear_line(admin_gw: GatewayProcess,
                                                 dead_url: str) -> None:
    url = ["--url", admin_gw.base_url]
    code, out, err = await publish(*url, "--all", "--api-key", "wrong")
    assert (code, out, err) == (1, "", "roomcast: HTTP 401: wrong API key\n")

    user_token = make_token(admin_gw.secret, "just-a-user")
    code, _, err = await publish(*url, "--all", "--token", user_token)
    assert (code, err) == (1, "roomcast: HTTP 403: administrators only\n")

    code, _, err = await publish(*url, "--room", "lobby", "--api-key", API_KEY)
    assert code == 1 and err.startswith("roomcast: HTTP 422: room_id: 'lobby' is not a valid")

    code, _, err = await publish(*url, "--connection", "gone", "--api-key", API_KEY)
    assert (code, err) == (1, "roomcast: HTTP 404: no connection 'gone'\n")

    code, _, err = await publish("--url", dead_url, "--all", "--api-key", API_KEY)
    assert code == 1 and err.startswith("roomcast: cannot reach roomcast for POST")

    code, _, err = await publish(*url, "--all", "--data", "[1]", "--api-key", API_KEY)
    assert code == 2 and "--data: must be a JSON object" in err
    code, _, err = await publish(*url, "--all", "--data", "{oops", "--api-key", API_KEY)
    assert code == 2 and "--data: not valid JSON" in err
    code, _, err = await publish(*url, "--all", "--type", "room_joined", "--api-key", API_KEY)
    assert code == 2 and "invalid choice: 'room_joined'" in err
    code, _, err = await publish(*url, "--type", "message", "--api-key", API_KEY)
    assert code == 2 and "one of the arguments --room --user --connection --all" in err
