"""roomcast.protocol stays pure: no event loop, no network library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import roomcast.protocol

PROTOCOL_DIR = Path(roomcast.protocol.__file__).parent
BANNED = ("asyncio", "aiohttp", "redis", "websockets.asyncio", "websockets.legacy",
          "uvloop", "aiosqlite", "asyncpg", "httpx")


def _banned(module: str) -> bool:
    return any(module == b or module.startswith(b + ".") for b in BANNED)


def test_importing_the_protocol_loads_no_io_library() -> None:
    code = (
        "import sys, roomcast.protocol, roomcast.protocol.codes, roomcast.protocol.envelope, "
        "roomcast.protocol.messages, roomcast.protocol.frames; print('\\n'.join(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    assert "roomcast.protocol.envelope" in out  # the probe really imported it
    assert [m for m in out if _banned(m)] == []


def test_no_protocol_file_imports_an_io_library() -> None:
    files = sorted(PROTOCOL_DIR.glob("*.py"))
    assert len(files) >= 4
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            assert not [n for n in names if _banned(n)], f"{path.name} imports {names}"
