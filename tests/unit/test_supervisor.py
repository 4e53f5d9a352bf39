"""The supervisor: a failing background task is logged, counted and started again."""

from __future__ import annotations

import asyncio
import logging

import pytest

from roomcast import metrics, supervisor


def failures(task: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "roomcast_background_task_failures_total", {"task": task}
    )
    return value or 0.0


async def test_a_task_that_raises_is_restarted_logged_and_counted(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor, "FIRST_DELAY", 0.0)
    runs = 0
    done = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise TypeError(f"run {runs} broke")
        done.set()
        await asyncio.Event().wait()  # then runs until cancelled

    before = failures("flaky")
    with caplog.at_level(logging.WARNING, "roomcast.supervisor"):
        task = supervisor.supervise("flaky", flaky)
        async with asyncio.timeout(10):
            await done.wait()
    assert runs == 3
    assert failures("flaky") == before + 2
    failed = [r for r in caplog.records if r.getMessage() == "task_failed"]
    assert len(failed) == 2 and all(r.exc_info for r in failed)
    assert [r.getMessage() for r in caplog.records].count("task_restarted") == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_task_that_returns_is_not_restarted() -> None:
    runs = 0

    async def once() -> None:
        nonlocal runs
        runs += 1

    await supervisor.supervise("once", once)
    assert runs == 1


async def test_a_spawned_failure_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    keep: set[asyncio.Task[None]] = set()

    async def broken() -> None:
        raise ValueError("nope")

    before = failures("oneshot")
    with caplog.at_level(logging.ERROR, "roomcast.supervisor"):
        await supervisor.spawn("oneshot", broken(), keep)
    assert failures("oneshot") == before + 1
    assert not keep
    assert any(r.getMessage() == "task_failed" and r.exc_info for r in caplog.records)
