"""How soon a client turned away by a full queue should come back: `Retry-After`, from what drains it.

Both back ends record each submission that finishes; the queue drains at the rate they finish, so
the time until what waits now has gone is `waiting / rate`, the rate taken over the last `window`
seconds. Before anything has finished there is no rate, and a short guess is the better mistake: a
client that comes back too soon costs one cheap 429, one told to wait too long leaves workers idle.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable


class DrainRate:
    floor = 1  # seconds; Retry-After is whole seconds
    ceiling = 120
    fallback = 2  # before any finish was seen

    def __init__(self, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self.began = clock()
        self.finished: deque[float] = deque()

    def record(self) -> None:
        """One submission has finished (or was cancelled while it waited): the queue moved by one."""
        self.finished.append(self.clock())
        self._forget()

    def per_second(self) -> float | None:
        """Finishes per second over the window (or since start-up, if that is shorter); None without any."""
        self._forget()
        if not self.finished:
            return None
        span = max(1.0, min(self.window, self.clock() - self.began))
        return len(self.finished) / span

    def retry_after(self, waiting: int) -> int:
        rate = self.per_second()
        if rate is None:
            return self.fallback
        return max(self.floor, min(self.ceiling, math.ceil(waiting / rate)))

    def _forget(self) -> None:
        horizon = self.clock() - self.window
        while self.finished and self.finished[0] < horizon:
            self.finished.popleft()
