"""Find a PostgreSQL server for the tests, or start a throwaway cluster.

In order: ``TEST_DATABASE_URL``; the local server at
``postgresql://postgres@127.0.0.1:5432/postgres`` (trust auth); a cluster made
with ``initdb`` / ``pg_ctl`` from ``/usr/lib/postgresql/*/bin``, run as the
``postgres`` OS user in a temp dir on a free port. Each test then gets a fresh
database (or, without CREATEDB rights, a fresh schema) that is dropped after it.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tests.helpers.redis_server import free_port

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CONNECT_TIMEOUT = 5.0
_T = TypeVar("_T")


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion from sync code, even if a loop is running here."""
    result: list[_T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


async def _probe(dsn: str) -> str | None:
    """None if ``dsn`` accepts a connection, else why not."""
    try:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


def with_database(dsn: str, database: str, **query: str) -> str:
    """``dsn`` pointing at another database, with extra query parameters."""
    parts = urlsplit(dsn)
    extra = "&".join(f"{k}={v}" for k, v in query.items())
    joined = "&".join(q for q in (parts.query, extra) if q)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, joined, parts.fragment))


@dataclass
class PostgresServer:
    """A reachable server; ``dsn`` connects to its maintenance database."""

    dsn: str
    #: Data directory of a cluster these helpers started (None for an existing server).
    cluster_dir: Path | None = None
    pg_bin: Path | None = None

    def stop(self) -> None:
        """Stop the cluster if these helpers started it."""
        if self.cluster_dir is None or self.pg_bin is None:
            return
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.pg_bin / "pg_ctl"),
             "-D", str(self.cluster_dir / "data"), "-m", "immediate", "stop"],
            check=False, capture_output=True, timeout=60,
        )
        shutil.rmtree(self.cluster_dir, ignore_errors=True)


def _start_cluster() -> tuple[PostgresServer | None, str]:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        return None, "no initdb under /usr/lib/postgresql/*/bin"
    if shutil.which("runuser") is None:
        return None, "no runuser binary to run initdb as the postgres user"
    pg_bin = Path(bins[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="roomcast-pg-"))
    shutil.chown(root, user="postgres")
    data = root / "data"
    port = free_port()
    as_pg = ["runuser", "-u", "postgres", "--"]
    try:
        subprocess.run(
            [*as_pg, str(pg_bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
             "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )
        subprocess.run(
            [*as_pg, str(pg_bin / "pg_ctl"), "-D", str(data), "-w", "-t", "60",
             "-l", str(root / "server.log"),
             "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
             "start"],
            check=True, capture_output=True, timeout=90,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        stderr = getattr(exc, "stderr", b"") or b""
        return None, f"could not start a cluster: {exc} {stderr.decode(errors='replace')[-300:]}"
    server = PostgresServer(f"postgresql://postgres@127.0.0.1:{port}/postgres", root, pg_bin)
    reason = _run(_probe(server.dsn))
    if reason is not None:
        server.stop()
        return None, f"started a cluster but cannot connect: {reason}"
    return server, ""


def find_postgres() -> tuple[PostgresServer | None, str]:
    """A server to test against, or None and every reason none could be had."""
    reasons = []
    env = os.environ.get("TEST_DATABASE_URL")
    if env:
        reason = _run(_probe(env))
        if reason is None:
            return PostgresServer(env), ""
        # An explicit URL that fails is an error of the environment, not a skip.
        raise RuntimeError(f"TEST_DATABASE_URL is set but unusable: {reason}")
    reason = _run(_probe(LOCAL_URL))
    if reason is None:
        return PostgresServer(LOCAL_URL), ""
    reasons.append(f"{LOCAL_URL}: {reason}")
    server, why = _start_cluster()
    if server is not None:
        return server, ""
    reasons.append(why)
    return None, "no PostgreSQL: " + "; ".join(reasons)


async def create_scratch(admin_dsn: str) -> tuple[str, str]:
    """A fresh database (or schema, without CREATEDB) for one test: (dsn, drop SQL)."""
    name = "roomcast_t_" + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(admin_dsn, timeout=CONNECT_TIMEOUT)
    try:
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
            return with_database(admin_dsn, name), f'DROP DATABASE "{name}" WITH (FORCE)'
        except asyncpg.InsufficientPrivilegeError:
            await conn.execute(f'CREATE SCHEMA "{name}"')
            # asyncpg passes unknown DSN query parameters on as server settings.
            database = urlsplit(admin_dsn).path.lstrip("/") or "postgres"
            dsn = with_database(admin_dsn, database, search_path=name)
            return dsn, f'DROP SCHEMA "{name}" CASCADE'
    finally:
        await conn.close()


async def drop_scratch(admin_dsn: str, drop_sql: str) -> None:
    """Drop what :func:`create_scratch` made."""
    conn = await asyncpg.connect(admin_dsn, timeout=CONNECT_TIMEOUT)
    try:
        await conn.execute(drop_sql)
    finally:
        await conn.close()
