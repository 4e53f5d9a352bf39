"""On a failure, the report carries what nginx and both instances logged meanwhile."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A hang through nginx names no culprit by itself: which upstream, how long, who cut."""
    report = yield
    dep = getattr(item, "funcargs", {}).get("deployment")
    if report.failed and dep is not None:
        report.sections.append(("nginx error.log", _tail(dep.error_log)))
        report.sections.append(("nginx access.log", _tail(dep.error_log.with_name("access.log"))))
        for i, gw in enumerate(dep.gateways):
            report.sections.append((f"gateway {i} (port {gw.port})", _tail(gw.log_path)))
    return report
