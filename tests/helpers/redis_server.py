"""A throwaway ``redis-server`` on a free port, which a test can stop and start again.

Never the Redis on 6379: each server gets its own port and temp directory, keeps
nothing on disk (``--save "" --appendonly no``), and can be stopped to simulate an
outage, then started on the *same* port so clients can reconnect to it.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.helpers.ports import stable_port

#: How long a server may take to answer PING after it was launched (a busy box is slow).
START_TIMEOUT = 30.0


def redis_server_binary() -> str | None:
    """Path of the ``redis-server`` binary, or None if there is none."""
    return shutil.which("redis-server")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serves(port: int, pid: int) -> bool:
    """Whether the Redis answering on ``port`` is process ``pid``.

    Not just any answer: a server of another test on the same port (taken between
    picking it and binding it) answered PING while ours was failing to bind, and a
    Redis Cluster was once made of five nodes where it listed six addresses.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"INFO server\r\n")
            answer = b""
            while b"process_id:" not in answer or not answer.endswith(b"\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    return False
                answer += chunk
    except OSError:
        return False
    return f"process_id:{pid}\r\n".encode() in answer


class RedisServer:
    """One ``redis-server`` process that a test owns.

    Args:
        directory: where the server runs and writes its log.
        binary: the ``redis-server`` to run (found on PATH by default).
        extra_args: more command-line options (a Cluster node's, say).
    """

    def __init__(self, directory: Path, binary: str | None = None,
                 extra_args: list[str] | None = None) -> None:
        found = binary or redis_server_binary()
        if found is None:
            raise RuntimeError("no redis-server binary on PATH")
        self.binary = found
        self.directory = directory
        self.port = 0
        self.extra_args = list(extra_args or [])
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://`` URL of the server (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Launch the server and return once it answers PING.

        The first start picks a free port; later starts reuse it, so clients
        holding the URL reconnect to the new process.
        """
        if self.running:
            return
        attempts = 3 if self.port == 0 else 1
        for attempt in range(attempts):
            if self.port == 0 or attempt > 0:
                self.port = stable_port()  # safe to restart on: see tests/helpers/ports.py
            if self._launch():
                return
        raise RuntimeError(f"redis-server did not start: {self._log_tail()}")

    def _launch(self) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = self.directory / "redis.log"
        self._proc = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--save", "",
                "--appendonly", "no",
                "--logfile", str(log),
                "--daemonize", "no",
                *self.extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False  # exited: most likely the port was taken meanwhile
            if _serves(self.port, self._proc.pid):
                return True
            time.sleep(0.01)  # polling the port: there is no event to await
        self.stop()
        return False

    def _log_tail(self) -> str:
        try:
            lines = (self.directory / "redis.log").read_text(errors="replace").splitlines()
        except OSError:
            return "no log"
        return " | ".join(lines[-5:])

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (SIGTERM, or SIGKILL to simulate a crash) and wait for it."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGCONT)  # a paused server would not act on SIGTERM
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def pause(self) -> None:
        """SIGSTOP: Redis stalls (busy, not down): connections stay open, and commands
        sent meanwhile (even new connections, accepted by the kernel) wait unanswered."""
        assert self._proc is not None and self.running, "not running"
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT: Redis runs again and executes what was sent while it stalled."""
        assert self._proc is not None, "not running"
        self._proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
