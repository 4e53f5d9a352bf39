"""Canary: how one hostile user's flood affects another user's ping round trips.

Starts a gateway, measures a canary user's ``system ping`` round trips alone, then while
one hostile user floods with several connections (reconnecting whenever it is closed),
and prints percentiles. Not part of the test suite (tests/abuse asserts the behaviour;
this script gives the figures).

    python -m benchmarks.canary [--connections 10] [--seconds 15] [--kind heartbeat]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from typing import Any

import aiohttp
import jwt
import psutil

from benchmarks.common import free_port

FRAMES = {
    "heartbeat": '{"type": "heartbeat", "id": "h"}',
    "invalid": '{"type": ',
    "members": '{"type": "system", "id": "m", "data": {"action": "members", "room": "%s"}}',
}


def token(secret: str, user: str, groups: list[str] | None = None) -> str:
    claims: dict[str, Any] = {"user_id": user, "exp": int(time.time()) + 3600}
    if groups:
        claims["groups"] = groups
    return jwt.encode(claims, secret, algorithm="HS256")


async def start_gateway(secret: str, port: int, env: dict[str, str]) -> asyncio.subprocess.Process:
    tmp = tempfile.mkdtemp(prefix="roomcast-canary-")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "roomcast", "serve", "--host", "127.0.0.1", "--port", str(port),
        env={**os.environ, "JWT_SECRET": secret, "ROOMCAST_DB": f"{tmp}/m.db",
             "ROOMCAST_LOG_LEVEL": "warning", **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    async with asyncio.timeout(60):
        while not (await proc.stdout.readline()).startswith(b"Open "):
            pass
    return proc


async def canary_pings(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[float]:
    """Sequential ping round trips for ``seconds``, in milliseconds."""
    out: list[float] = []
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
        mid = f"p{n}"
        sent = time.perf_counter()
        await ws.send_str(json.dumps({"type": "system", "id": mid, "data": {"action": "ping"}}))
        while True:
            frame = await ws.receive(timeout=30)
            if frame.type is not aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"the canary's connection ended: {frame}")
            if json.loads(frame.data).get("id") == mid:
                break
        out.append((time.perf_counter() - sent) * 1000)
        await asyncio.sleep(0.01)
    return out


async def hostile(session: aiohttp.ClientSession, url: str, tok: str, frame: str,
                  closes: Counter[str]) -> None:
    """One flooding connection, reconnecting whenever the gateway closes it."""
    while True:
        try:
            ws = await session.ws_connect(url, headers={"Authorization": f"Bearer {tok}"},
                                          max_msg_size=0)
        except aiohttp.WSServerHandshakeError as exc:
            closes[f"refused {exc.status}"] += 1
            await asyncio.sleep(0.5)
            continue

        async def drain(ws: aiohttp.ClientWebSocketResponse = ws) -> None:
            async for _ in ws:
                pass

        reader = asyncio.create_task(drain())
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            sent = 0
            while not ws.closed:
                await ws.send_str(frame)
                sent += 1
                if sent % 100 == 0:
                    # send_str only yields when the socket is full: let the reader (and
                    # SIGINT) run, or a closed socket is written to forever.
                    await asyncio.sleep(0)
        await reader
        closes[f"closed {ws.close_code}"] += 1


def summary(name: str, rtts: list[float]) -> str:
    q = statistics.quantiles(rtts, n=100)
    return (f"{name:<24} n={len(rtts):<5} p50={q[49]:7.2f} ms  p99={q[98]:7.2f} ms  "
            f"max={max(rtts):7.2f} ms")


async def main(args: argparse.Namespace) -> None:
    secret, port = secrets.token_hex(32), free_port()
    proc = await start_gateway(secret, port, {})
    url = f"ws://127.0.0.1:{port}/websocket/connect"
    group = "canary-room"
    try:
        async with aiohttp.ClientSession() as session:
            canary = await session.ws_connect(
                url, headers={"Authorization": f"Bearer {token(secret, 'canary', [group])}"})
            # Members of the room the members flood lists (a listing of 200).
            crowd = [await session.ws_connect(
                url, headers={"Authorization": f"Bearer {token(secret, f'm{i}', [group])}"})
                for i in range(200 if args.kind == "members" else 0)]
            print(summary("alone", await canary_pings(canary, args.seconds / 3)), flush=True)
            frame = FRAMES[args.kind].replace("%s", f"group:{group}")
            # The flood comes from another process, as it would from another machine: in
            # this process it would starve the canary's own measurements.
            flooder = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.canary", "--flood", url,
                token(secret, "hostile", [group]), frame, str(args.connections),
                stdout=asyncio.subprocess.PIPE,
            )
            await asyncio.sleep(2)  # the flood is under way
            gateway = psutil.Process(proc.pid)
            gateway.cpu_percent()
            rtts = await canary_pings(canary, args.seconds)
            cpu = gateway.cpu_percent()
            print(summary(f"{args.kind} flood x{args.connections}", rtts)
                  + f"  gateway CPU {cpu:.0f}%", flush=True)
            flooder.send_signal(signal.SIGINT)
            out, _ = await asyncio.wait_for(flooder.communicate(), 30)
            print(f"hostile connections ended: {out.decode().strip()}")
            for ws in (canary, *crowd):
                await ws.close()
    finally:
        proc.terminate()
        await proc.wait()


async def flood(url: str, tok: str, frame: str, connections: int) -> None:
    """The hostile user (``--flood``): floods until SIGINT, then prints how its sockets ended."""
    closes: Counter[str] = Counter()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(hostile(session, url, tok, frame, closes))
                 for _ in range(connections)]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(closes))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--flood"]:
        asyncio.run(flood(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--kind", choices=sorted(FRAMES), default="heartbeat")
    asyncio.run(main(parser.parse_args()))
