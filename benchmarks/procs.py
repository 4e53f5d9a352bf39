"""Child processes of a benchmark run: pinned, logged, bounded, always killed."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from benchmarks.common import pin_to

PR_SET_PDEATHSIG = 1


#: Scheduling priority of the runner's children (set by the runner; 0 = unchanged).
NICE = {"value": 0}


def set_nice(value: int) -> int:
    """Give this process (and so its children) priority ``value``; the one in force."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, value)
    NICE["value"] = os.getpriority(os.PRIO_PROCESS, 0)
    return NICE["value"]


def _child_setup(cpu: int) -> Callable[[], None]:
    """``preexec_fn``: pin to ``cpu`` and die with the runner (PR_SET_PDEATHSIG)."""

    def setup() -> None:
        pin_to(cpu)
        nice = NICE["value"]
        if nice:
            # With sched_autogroup, nice only ranks processes of one session against each
            # other: the child has a session of its own (start_new_session), so its
            # priority against everyone else is the nice of that session's autogroup.
            with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as fh:
                fh.write(str(nice))
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    return setup


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class ProcessGroup:
    """Starts children and, on ``close``, terminates (then kills) every one of them."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[tuple[str, asyncio.subprocess.Process, Path]] = []

    async def spawn(
        self,
        name: str,
        argv: Sequence[str],
        cpu: int,
        env: Mapping[str, str] | None = None,
        pipes: bool = False,
    ) -> asyncio.subprocess.Process:
        log = self.log_dir / f"{name}.log"
        full_env = dict(os.environ)
        full_env.update(env or {})
        with open(log, "wb") as log_fh:  # noqa: ASYNC230 - creating an empty log is instant
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if pipes else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if pipes else log_fh,
                stderr=log_fh,
                env=full_env,
                preexec_fn=_child_setup(cpu),
                start_new_session=True,
                limit=1 << 24,
            )
        self.children.append((name, proc, log))
        return proc

    def log_of(self, proc: asyncio.subprocess.Process) -> Path | None:
        for _, p, log in self.children:
            if p is proc:
                return log
        return None

    async def close(self) -> None:
        for _, proc, _ in self.children:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        for _, proc, _ in self.children:
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await asyncio.wait_for(proc.wait(), 5)
        self.children.clear()


async def wait_port(
    port: int, proc: asyncio.subprocess.Process, log: Path | None, deadline_s: float = 20.0
) -> None:
    """Wait until 127.0.0.1:port accepts; fail early if ``proc`` exits."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while loop.time() < end:
        if proc.returncode is not None:
            raise RuntimeError(
                f"process exited with {proc.returncode}:\n{tail(log) if log else ''}"
            )
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
            writer.close()
            await writer.wait_closed()
            return
        except (OSError, TimeoutError):
            await asyncio.sleep(0.1)
    raise RuntimeError(f"port {port} not open after {deadline_s}s:\n{tail(log) if log else ''}")


def rss(pids: Sequence[int]) -> int:
    """Sum of VmRSS of ``pids`` in bytes."""
    total = 0
    for pid in pids:
        total += psutil.Process(pid).memory_info().rss
    return total


class GeneratorProc:
    """The load generator child: one JSON command a line in, one JSON event a line out."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log

    async def call(self, cmd: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)
        except TimeoutError as exc:
            raise RuntimeError(f"generator: no answer to {cmd['cmd']} in {timeout_s:.0f}s") from exc
        if not line:
            raise RuntimeError(f"generator exited:\n{tail(self.log)}")
        event: dict[str, Any] = json.loads(line)
        if "error" in event:
            raise RuntimeError(f"generator {cmd['cmd']}: {event['error']}\n{tail(self.log)}")
        return event
