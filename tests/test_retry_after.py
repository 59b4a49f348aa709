"""Retry-After on a 429 comes from how fast the queue is seen to drain, on both back ends."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import httpx
import pytest

from monaco.api.app import create_app
from monaco.api.drain import DrainRate
from monaco.core.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_before_any_finish_the_answer_is_the_short_fallback() -> None:
    drain = DrainRate(clock=Clock())
    assert drain.per_second() is None
    assert drain.retry_after(100) == DrainRate.fallback == 2


def test_the_answer_is_the_time_to_drain_what_waits_at_the_rate_seen() -> None:
    clock = Clock()
    drain = DrainRate(window=60, clock=clock)
    clock.now += 7
    for _ in range(100):  # the case: 100 drained in 7 s, two workers
        drain.record()
    assert drain.per_second() == pytest.approx(100 / 7)
    assert drain.retry_after(100) == 7  # not 50 (100 waiting / 2 workers)
    assert drain.retry_after(10) == 1  # the floor: whole seconds, never 0


def test_the_rate_is_taken_over_the_recent_window_only() -> None:
    clock = Clock()
    drain = DrainRate(window=60, clock=clock)
    for _ in range(600):  # a fast burst long ago
        drain.record()
    clock.now += 120
    drain.record()  # and one finish in the last minute: the queue drains slowly now
    assert drain.per_second() == pytest.approx(1 / 60)
    assert drain.retry_after(1) == 60
    assert drain.retry_after(50) == DrainRate.ceiling == 120  # the ceiling
    clock.now += 61
    assert drain.retry_after(50) == DrainRate.fallback  # nothing seen for a window: no rate to go on


def test_a_young_process_divides_by_its_age_not_the_whole_window() -> None:
    clock = Clock()
    drain = DrainRate(window=60, clock=clock)
    clock.now += 0.2
    for _ in range(4):
        drain.record()
    assert drain.per_second() == 4.0  # over at least one second, so two quick finishes are no 1000/s
    clock.now += 3.8
    assert drain.per_second() == 1.0
    assert drain.retry_after(10) == 10


@pytest.mark.anyio
async def test_the_local_back_end_says_when_its_queue_will_have_drained(data_dir: Path) -> None:
    """One worker, a queue of 20: the old answer was 20 s (waiting / workers) whatever the programs."""
    settings = Settings(data_dir=data_dir, max_workers=1, queue_size=20)
    app = create_app(settings)
    quick = {"code": "print(1)"}
    blocker = {"code": "import time; time.sleep(1.5)", "timeoutSeconds": 5}

    async def fill() -> httpx.Response:
        """A blocker runs, 20 quick ones wait behind it, the 22nd submission is refused."""
        sid = (await client.post("/submit", json=blocker)).json()["id"]
        async with asyncio.timeout(20):
            while (await client.get("/status", params={"id": sid})).json()["status"] != "running":
                await asyncio.sleep(0.01)
        for _ in range(20):
            assert (await client.post("/submit", json=quick)).status_code == 202
        refused = await client.post("/submit", json=quick)
        assert refused.status_code == 429, refused.text
        return refused

    async def drained() -> None:
        async with asyncio.timeout(120):
            while (await client.get("/queue-stats")).json()["queue_stats"] != {
                "queue_length": 0, "max_workers": 1, "running_jobs": 0
            }:  # fmt: skip
                await asyncio.sleep(0.02)

    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost", timeout=60
    ) as client:  # fmt: skip
        first = await fill()
        assert first.headers["retry-after"] == str(DrainRate.fallback)  # nothing has finished yet
        began = time.monotonic()
        await drained()
        took = time.monotonic() - began

        second = await fill()
        retry_after = int(second.headers["retry-after"])
        assert f"retry in {retry_after} s" in second.json()["error"]
        # The 20 waiting drain at the rate seen so far (the blocker's idle time included, so the
        # estimate errs long): it is about how long the first queue took to drain, not 20 s.
        assert 1 <= retry_after <= math.ceil(took) + 3, (retry_after, took)
        assert retry_after < 20 or took > 15, (retry_after, took)
        await drained()
