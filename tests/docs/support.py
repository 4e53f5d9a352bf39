"""The repository's own files, read the way a reviewer would: tracked text only."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Directories that are never part of the project, when git cannot list its files.
_UNTRACKED = {".git", ".venv", "venv", "node_modules", "build", "dist", "artifacts",
              "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"}


def tracked_files() -> list[Path]:
    """The files of the repository (git's list; a directory walk outside a checkout)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z"],
            check=True, capture_output=True, timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        found = []
        for folder, dirs, files in os.walk(ROOT):
            dirs[:] = [d for d in dirs if d not in _UNTRACKED and not d.endswith(".egg-info")]
            found += [Path(folder) / name for name in files]
        return sorted(found)
    return [ROOT / name for name in out.decode().split("\0") if name]


def text_files() -> dict[Path, str]:
    """Every tracked file that is UTF-8 text, by path."""
    texts = {}
    for path in tracked_files():
        try:
            texts[path] = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
    return texts


def section(markdown: str, title: str) -> str:
    """The body of the ``## title`` section (up to the next ``## ``), or ''."""
    lines = markdown.splitlines()
    body: list[str] = []
    inside = False
    for line in lines:
        if line.startswith("## "):
            if inside:
                break
            inside = line[3:].strip() == title
            continue
        if inside:
            body.append(line)
    return "\n".join(body)
