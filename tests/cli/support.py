"""Run ``roomcast`` subcommands as real processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI process: this checkout first on the path, no stray secret."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("JWT_SECRET", "ROOMCAST_TOKEN", "ROOMCAST_DEV_SECRET_FILE")}
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def roomcast(*args: str, env: dict[str, str] | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``roomcast ARGS`` to completion (check ``returncode``: nothing else does)."""
    return subprocess.run(
        [sys.executable, "-m", "roomcast", *args],
        env=env or cli_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def roomcast_async(
    *args: str, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """Start ``roomcast ARGS`` with piped output, without waiting for it."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "roomcast",
        *args,
        env=env or cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
