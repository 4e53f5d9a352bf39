"""Run a real ``roomcast serve`` process for a test."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from queue import Empty, Queue

from tests.helpers.ports import stable_port

#: How long a gateway may take to print its banner: imports alone take seconds on a busy box.
READY_TIMEOUT = 60.0


class GatewayProcess:
    """A gateway subprocess on a free port, with start/stop/kill/restart."""

    def __init__(self, env: dict[str, str] | None = None, args: list[str] | None = None,
                 *, tls: bool = False) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="roomcast-test-")
        self.dir = Path(self._tmp.name)
        # Hex: a secret starting with "-" would be read as an option by the CLI.
        self.secret = (env or {}).get("JWT_SECRET") or secrets.token_hex(32)
        self.env = {
            "JWT_SECRET": self.secret,
            "ROOMCAST_DB": str(self.dir / "members.db"),
            "ROOMCAST_LOG_FORMAT": "json",
            **(env or {}),
        }
        self.args = list(args or [])
        self.tls = tls
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.log_path = self.dir / "gateway.log"
        self.lines: Queue[str | None] = Queue()

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        path = self.env.get("WEBSOCKET_PATH", "/websocket/connect")
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}{path}"

    def start(self) -> GatewayProcess:
        """Start and wait until it listens.

        The first start picks a port below the kernel's ephemeral range (see
        :mod:`.ports`); later starts keep it, so clients reconnect to the same URL and
        nothing else on the machine has taken the port meanwhile.
        """
        fresh = self.port == 0
        for _ in range(3 if fresh else 1):
            if fresh:
                self.port = stable_port()
            if self._launch():
                return self
        raise RuntimeError(f"gateway could not listen on port {self.port}; log:\n{self.log()}")

    def _launch(self) -> bool:
        """Run the process until its banner; False if the port was taken meanwhile."""
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "roomcast", "serve", "--host", "127.0.0.1",
               "--port", str(self.port), *self.args]
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        self.lines = Queue()
        threading.Thread(target=self._pump, args=(self.proc, self.lines), daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(remaining, 0.01))
            except Empty:
                self.kill()
                raise RuntimeError(f"gateway did not start; log:\n{self.log()}") from None
            if line is None:
                self.proc.wait(10)
                self.proc = None
                if f"cannot listen on 127.0.0.1:{self.port}" in self.log():
                    return False
                raise RuntimeError(f"gateway exited at start; log:\n{self.log()}")
            if line.startswith("Open "):
                return True

    @staticmethod
    def _pump(proc: subprocess.Popen[str], lines: Queue[str | None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.strip())
        lines.put(None)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; returns the exit code.

        The bound is generous: a drain (clients closed within ROOMCAST_SHUTDOWN_TIMEOUT,
        then the stores) on a machine whose cores are busy with other work took more
        than 15 s in CI.
        """
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.proc = None
        return code

    def kill(self) -> None:
        """SIGKILL: a crash, no goodbye to anyone."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def restart(self) -> GatewayProcess:
        """Stop (SIGTERM) and start again on the same port (see :meth:`start`)."""
        self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def close(self) -> None:
        self.kill()
        self._tmp.cleanup()
