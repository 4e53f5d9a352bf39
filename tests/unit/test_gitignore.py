"""What ``roomcast serve`` and the test command leave in a checkout stays out of git."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# SQLite in WAL mode keeps two files beside the database while it is open.
LEFT_BEHIND = ["roomcast.db", "roomcast.db-wal", "roomcast.db-shm", ".roomcast-dev-secret",
               ".venv-test/bin/python", ".hypothesis/examples/x", "artifacts/screenshots/x.png"]


def test_files_the_gateway_and_the_tests_leave_are_ignored() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", "--verbose", "--non-matching", *LEFT_BEHIND],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )
    unignored = [line.split("\t")[-1] for line in done.stdout.splitlines()
                 if line.startswith("::")]
    assert unignored == []
    assert done.returncode == 0, done.stderr
