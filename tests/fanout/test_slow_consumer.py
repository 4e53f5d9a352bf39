"""One client stops reading while 50 others receive a stream, over plain TCP and TLS.

The room's fan-out asks no transport for its buffer size: the transport signals the
one that passed its limit (``pause_writing``), and a TLS transport keeps its own buffer.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import pytest
import trustme
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from roomcast.protocol.codes import CloseCode
from tests.conftest import GatewayFactory
from tests.helpers.tokens import make_token
from tests.helpers.ws import Peer, connect_peer

READERS = 50
MESSAGES = 120
PAYLOAD = "x" * 50_000  # 6 MB in all: more than the kernel buffers (tcp_wmem max 4 MiB)


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
async def test_slow_consumer_is_closed_and_nobody_else_waits(
    gateway_factory: GatewayFactory, tls: bool, tmp_path: Path,
) -> None:
    env = {
        "ROOMCAST_MAX_QUEUE_BYTES": str(128 * 1024),
        "ROOMCAST_CLIENT_RATE": "100000",
        "ROOMCAST_CLIENT_BURST": "100000",
    }
    context: ssl.SSLContext | None = None
    if tls:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
        cert.cert_chain_pems[0].write_to_path(str(certfile))
        cert.private_key_pem.write_to_path(str(keyfile))
        gw = gateway_factory(env=env, tls=True, args=[
            "--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile)])
        context = ssl.create_default_context()
        ca.configure_trust(context)
    else:
        gw = gateway_factory(env=env)
    group = ["stream"]
    readers: list[Peer] = [await connect_peer(gw, f"reader{i}", groups=group,
                                              ssl_context=context)
                           for i in range(READERS)]
    sender = await connect_peer(gw, "sender", groups=group, ssl_context=context)

    # The slow client: a tiny receive buffer and a client-side queue of one message, so
    # once it stops reading, the server's queue for it fills up.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gw.port))
    token = make_token(gw.secret, "sloth", groups=group)
    slow = await connect(gw.ws_url, sock=sock, max_queue=1, ssl=context,
                         server_hostname="127.0.0.1" if tls else None,
                         additional_headers={"Authorization": f"Bearer {token}"})

    # Lock-step: each message goes out once every reader has the previous one, so the
    # readers never have a backlog while the slow client's grows past its limit.
    for n in range(MESSAGES):
        await sender.send({"type": "message", "room": "group:stream",
                           "data": {"n": n, "pad": PAYLOAD}})
        # The sender is a member too and reads its own copy.
        received = await asyncio.gather(*(
            p.expect(lambda m: m.get("type") == "message") for p in [*readers, sender]
        ))
        assert [m["data"]["n"] for m in received] == [n] * (READERS + 1)

    # Now drain the slow client: what was already on its way, then the end. Its socket
    # was full, so the gateway cut it without a close frame (its buffer is not kept
    # waiting for a reader that is not there); a 3008 frame is sent only when the
    # socket can still take it.
    async with asyncio.timeout(30):
        try:
            while True:
                await slow.recv()
        except ConnectionClosed as exc:
            assert exc.rcvd is None or exc.rcvd.code == CloseCode.SLOW_CONSUMER

    # The others are unaffected and the server still delivers.
    await sender.send({"type": "message", "room": "group:stream", "data": {"n": "after"}})
    msg = await readers[0].expect(lambda m: m.get("type") == "message")
    assert msg["data"]["n"] == "after"
    assert '"event": "slow_consumer"' in gw.log() or '"event":"slow_consumer"' in gw.log()
    for peer in [*readers, sender]:
        await peer.close()
