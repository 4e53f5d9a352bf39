"""The package as users get it: sdist and wheel built, the wheel installed in a new
virtualenv, and ``roomcast serve`` from there serving its pages from site-packages.

The build and the virtualenv are made once per test session (shared by the xdist
workers through a lock), in pytest's temporary directory.
"""

from __future__ import annotations

import fcntl
import os
import queue
import shutil
import subprocess
import sys
import tarfile
import threading
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "roomcast" / "web"
#: Bound of each step: building, installing (from the package index), starting.
STEP_TIMEOUT = 600
START_TIMEOUT = 60.0
#: What the copy of the source tree leaves out: it is built as a clean checkout would be.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", "node_modules", "__pycache__", "*.egg-info", "build", "dist",
    "artifacts", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis",
    "roomcast.db*", ".roomcast-dev-secret",
)


@dataclass(frozen=True)
class Installed:
    sdist: Path
    wheel: Path
    venv: Path
    site_packages: Path

    @property
    def package(self) -> Path:
        return self.site_packages / "roomcast"


def _run(cmd: list[str], **kw: object) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=STEP_TIMEOUT,
                          check=False, **kw)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return str(done.stdout)


def _clean_env() -> dict[str, str]:
    """The environment without anything pointing at this checkout or its virtualenv."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "JWT_SECRET", "REDIS_URL", "DATABASE_URL"}
    return {k: v for k, v in os.environ.items()
            if k not in drop and not k.startswith("ROOMCAST_")}


def _build_and_install(work: Path) -> Installed:
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    dist = work / "dist"
    # The wheel is built from the sdist, as pip does for users who only get the sdist.
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)])
    (sdist,) = dist.glob("roomcast-*.tar.gz")
    (wheel,) = dist.glob("roomcast-*.whl")
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
          "-c", str(ROOT / "constraints.txt"), str(wheel)], env=_clean_env())
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                env=_clean_env(), cwd=work).strip()
    return Installed(sdist, wheel, venv, Path(site))


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel, installed once per session in a virtualenv of its own."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers of this session
    work = root / "wheel-install"
    work.mkdir(exist_ok=True)
    with (root / "wheel-install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = work / "done"
        if not done.exists():
            for child in work.iterdir():  # a half-done attempt
                shutil.rmtree(child) if child.is_dir() else child.unlink()
            installed = _build_and_install(work)
            done.write_text("\n".join(str(p) for p in (installed.sdist, installed.wheel,
                                                       installed.venv, installed.site_packages)))
        sdist, wheel, venv, site = done.read_text().splitlines()
    return Installed(Path(sdist), Path(wheel), Path(venv), Path(site))


def web_files() -> list[str]:
    """Every file of ``roomcast/web`` in the source tree, relative to the package."""
    return sorted(f"roomcast/web/{p.relative_to(WEB).as_posix()}" for p in WEB.rglob("*")
                  if p.is_file() and "node_modules" not in p.parts)


def test_wheel_and_sdist_carry_the_web_files(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as whl:
        in_wheel = set(whl.namelist())
    assert set(web_files()) <= in_wheel, sorted(set(web_files()) - in_wheel)
    assert "roomcast/py.typed" in in_wheel
    assert not any(name.startswith("tests/") for name in in_wheel)
    with tarfile.open(installed.sdist) as sdist:
        top = sdist.getnames()[0].split("/")[0]
        in_sdist = {name.removeprefix(f"{top}/") for name in sdist.getnames()}
    assert set(web_files()) <= in_sdist, sorted(set(web_files()) - in_sdist)
    assert {"pyproject.toml", "README.md"} <= in_sdist
    entry_points = next(n for n in in_wheel if n.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(installed.wheel) as whl:
        assert "roomcast = roomcast.cli:main" in whl.read(entry_points).decode()


@pytest.fixture
def served(installed: Installed, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``roomcast serve`` of the virtualenv, started in an empty directory, on its
    defaults (development login and demo on); yields its base URL and a marker that
    was appended to the installed client.js and pages just before."""
    marker = f"installed-copy-{uuid.uuid4().hex}"
    originals = {}
    for relative, comment in (("client.js", f"// {marker}\n"),
                              ("demo/index.html", f"<!-- {marker} -->\n"),
                              ("admin/index.html", f"<!-- {marker} -->\n")):
        path = installed.package / "web" / relative
        originals[path] = path.read_bytes()
        path.write_bytes(originals[path] + comment.encode())
    env = {**_clean_env(), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([str(installed.venv / "bin" / "roomcast"), "serve", "--port", "0"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        seen: list[str] = []
        while not seen or not seen[-1].startswith("Open "):
            try:
                seen.append(lines.get(timeout=START_TIMEOUT))
            except queue.Empty:
                raise AssertionError(f"roomcast serve did not start: {seen}") from None
        url = next(line.split()[3] for line in seen if line.startswith("roomcast listening on"))
        yield url, marker
    finally:
        proc.terminate()
        proc.wait(30)
        for path, content in originals.items():
            path.write_bytes(content)


def test_roomcast_serve_from_the_wheel_serves_its_pages(
    installed: Installed, served: tuple[str, str], tmp_path: Path,
) -> None:
    url, marker = served
    # The interpreter of the virtualenv, in the directory serve runs in, imports the
    # installed package: not this checkout.
    where = _run([str(installed.venv / "bin" / "python"), "-c",
                  "import roomcast; print(roomcast.__file__)"], env=_clean_env(), cwd=tmp_path)
    assert Path(where.strip()).parent == installed.package
    assert not Path(where.strip()).is_relative_to(ROOT)

    with httpx.Client(base_url=url, timeout=30) as http:
        for path, kind in (("/", "text/html"), ("/admin", "text/html"),
                           ("/websocket/client.js", "javascript"),
                           ("/static/client.js", "javascript")):
            r = http.get(path)
            assert r.status_code == 200, (path, r.status_code)
            assert kind in r.headers["content-type"], (path, r.headers["content-type"])
            # What the server sent is the installed copy, changed a moment ago.
            assert marker in r.text, path
        for path in ("/static/demo/app.js", "/static/admin/admin.js", "/static/ui.js",
                     "/static/roomcast.css", "/login"):
            r = http.get(path)
            assert r.status_code == 200, (path, r.status_code)
        docs = http.get("/websocket/docs")
        assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
        assert "/websocket/docs.js" in docs.text
        for asset in ("/websocket/docs.js", "/websocket/docs.css"):
            assert http.get(asset).status_code == 200, asset
        spec = http.get("/websocket/openapi.json")
        assert spec.status_code == 200 and spec.json()["openapi"].startswith("3.")
    # It ran on its defaults, in its own directory: the dev secret is kept there.
    assert (tmp_path / ".roomcast-dev-secret").is_file()
