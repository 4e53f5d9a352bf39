"""Summarize a py-spy ``--format raw`` (collapsed stacks) file into markdown tables.

python -m benchmarks.profile benchmarks/profiles/roomcast-5000.txt
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


#: The repository root, cut from file paths like site-packages.
REPO = str(Path(__file__).resolve().parents[1]) + "/"


def short_file(path: str) -> str:
    for marker in ("site-packages/", "lib/python3.11/", REPO):
        i = path.find(marker)
        if i >= 0:
            return path[i + len(marker) :]
    return path


def normalize(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (pkg/file.py)``."""
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    return f"{m['func']} ({short_file(m['file'])})"


def package(frame: str) -> str:
    m = FRAME.match(frame)
    if not m:
        return "(native / other)"
    file = m["file"]
    for name in ("roomcast", "aiohttp", "asyncio", "uvloop", "socketio", "engineio", "uvicorn"):
        if f"{name}/" in file:
            return name
    if file.endswith(".pyx") or file.endswith(".c") or ".so" in file:
        return "(native)"
    return short_file(file).split("/")[0]


BOILERPLATE = ("<frozen runpy>", "uvloop/__init__.py", "asyncio/runners.py", "__main__.py", "/cli/")


def _boilerplate(frame: str) -> bool:
    """Frames every sample of the main thread has (process start-up, the loop runner)."""
    return any(marker in frame for marker in BOILERPLATE) or frame.startswith("main (")


def load(path: Path) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        stacks[tuple(normalize(f) for f in frames)] += int(count)
    return stacks


def summarize(path: Path, top: int = 15) -> list[str]:
    stacks = load(path)
    total = sum(stacks.values())
    if not total:
        return ["(no samples)"]
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    pkgs: Counter[str] = Counter()
    for frames, count in stacks.items():
        if not frames:
            continue
        self_t[frames[-1]] += count
        pkgs[package(frames[-1])] += count
        for f in set(frames):
            incl[f] += count
    out = [
        f"{total:,} samples (250/s, idle excluded).",
        "",
        "Self time by package (leaf frame):",
        "",
        "| package | % |",
        "|---|---|",
    ]
    out += [f"| {p} | {100 * c / total:.1f} |" for p, c in pkgs.most_common(10)]
    out += ["", "Self time (leaf frame):", "", "| function | % |", "|---|---|"]
    out += [f"| `{f}` | {100 * c / total:.1f} |" for f, c in self_t.most_common(top)]
    out += ["", "Inclusive time:", "", "| function | % |", "|---|---|"]
    below = [(f, c) for f, c in incl.most_common() if not _boilerplate(f)][:top]
    out += [f"| `{f}` | {100 * c / total:.1f} |" for f, c in below]
    return out


if __name__ == "__main__":
    print("\n".join(summarize(Path(sys.argv[1]))))
