"""Dev login (form, cookie flags, off with JWT_SECRET) and wss:// with a test-made certificate."""

from __future__ import annotations

import ssl
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest
import trustme

from tests.conftest import GatewayFactory
from tests.core.support import cookie, open_peer, ping, unique
from tests.helpers.gateway import GatewayProcess
from tests.helpers.ws import TIMEOUT, connect_peer


@pytest.fixture
def embedded(tmp_path: Path) -> dict[str, str]:
    """No JWT_SECRET: a generated dev secret (kept in tmp_path) and the dev login on."""
    return {"JWT_SECRET": "", "ROOMCAST_DEV_SECRET_FILE": str(tmp_path / "dev-secret")}


async def login(gw: GatewayProcess, verify: ssl.SSLContext | bool = True,
                **form: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gw.base_url, verify=verify, timeout=TIMEOUT) as http:
        return await http.post("/login", data=form)


def auth_cookie(resp: httpx.Response) -> tuple[str, str]:
    """The falcon_auth_token value and its raw Set-Cookie line."""
    (line,) = [h for h in resp.headers.get_list("set-cookie") if "falcon_auth_token=" in h]
    jar: SimpleCookie = SimpleCookie()
    jar.load(line)
    return jar["falcon_auth_token"].value, line


def attributes(set_cookie: str) -> set[str]:
    return {part.strip().split("=")[0].lower() for part in set_cookie.split(";")[1:]}


async def test_dev_login_form_cookie_and_connect(gateway_factory: GatewayFactory,
                                                 embedded: dict[str, str]) -> None:
    gw = gateway_factory(env=embedded)
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=TIMEOUT) as http:
        form = await http.get("/login")
    assert form.status_code == 200 and form.headers["content-type"].startswith("text/html")
    assert 'name="user_id"' in form.text and 'name="groups"' in form.text

    user, red = unique("dev"), unique("red")
    resp = await login(gw, user_id=user, name="Dev User", groups=f"{red}, blue:Blue team")
    assert resp.status_code == 303
    token, line = auth_cookie(resp)
    flags = attributes(line)
    assert {"httponly", "samesite"} <= flags and "secure" not in flags
    assert "samesite=lax" in line.lower().replace(" ", "")

    peer = await open_peer(gw, rooms=3, headers=cookie(token))
    try:
        assert peer.welcome["data"]["user_id"] == user
        assert peer.rooms == {f"user:{user}", f"group:{red}", "group:blue"}
        await ping(peer)
    finally:
        await peer.close()


async def test_dev_login_refuses_a_bad_user_id(gateway_factory: GatewayFactory,
                                               embedded: dict[str, str]) -> None:
    gw = gateway_factory(env=embedded)
    resp = await login(gw, user_id="../etc/passwd")
    assert resp.status_code == 422 and "set-cookie" not in resp.headers


async def test_dev_login_is_absent_when_jwt_secret_is_set(gateway: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=TIMEOUT) as http:
        assert (await http.get("/login")).status_code == 404
        resp = await http.post("/login", data={"user_id": unique("x")})
    assert resp.status_code in (404, 405) and "set-cookie" not in resp.headers


async def test_dev_login_can_be_turned_on_with_jwt_secret(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(env={"ROOMCAST_DEV_LOGIN": "on"})
    user = unique("on")
    token, _ = auth_cookie(await login(gw, user_id=user))
    peer = await open_peer(gw, rooms=1, headers=cookie(token))
    assert peer.welcome["data"]["user_id"] == user
    await peer.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_gateway(gateway_factory: GatewayFactory, ca: trustme.CA, tmp_path: Path) -> GatewayProcess:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    return gateway_factory(env={"ROOMCAST_DEV_LOGIN": "on"}, tls=True,
                           args=["--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile)])


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


async def test_wss_with_a_self_signed_certificate(tls_gateway: GatewayProcess,
                                                  ca: trustme.CA) -> None:
    gw = tls_gateway
    assert gw.ws_url.startswith("wss://")
    peer = await connect_peer(gw, unique("tls"), groups=[unique("g")],
                              ssl_context=client_context(ca))
    try:
        assert peer.welcome["type"] == "system_notification" and len(peer.rooms) == 2
        await ping(peer)
    finally:
        await peer.close()


async def test_wss_is_real_tls(tls_gateway: GatewayProcess) -> None:
    # Without trusting the test CA the handshake fails: the socket really speaks TLS.
    with pytest.raises(ssl.SSLCertVerificationError):
        await connect_peer(tls_gateway, unique("tls"), ssl_context=ssl.create_default_context())


async def test_login_cookie_is_secure_over_tls(tls_gateway: GatewayProcess, ca: trustme.CA) -> None:
    ctx = client_context(ca)
    resp = await login(tls_gateway, verify=ctx, user_id=unique("secure"))
    assert resp.status_code == 303
    token, line = auth_cookie(resp)
    assert {"secure", "httponly", "samesite"} <= attributes(line)
    peer = await open_peer(tls_gateway, rooms=1, headers=cookie(token), ssl=ctx)
    await peer.close()
