"""Per-visitor rate limits: at most ``max_calls`` calls of one kind per visitor in a sliding window."""
from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from typing import Callable

from .errors import AVDemoError


class RateLimiter:
    """At most ``max_calls`` ``what`` per visitor in any ``window_s`` seconds (0 calls: no limit)."""

    def __init__(self, what: str, max_calls: int, window_s: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.max_calls, self.window_s, self.clock = what, max_calls, window_s, clock
        self._calls: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def check(self, visitor: str) -> None:
        """Count one call of ``visitor``, or refuse it (``AVDemoError``) when the window is full."""
        if not self.max_calls:
            return
        now = self.clock()
        with self._lock:
            calls = self._calls[visitor]
            while calls and calls[0] <= now - self.window_s:
                calls.popleft()
            if len(calls) >= self.max_calls:
                wait = calls[0] + self.window_s - now
                raise AVDemoError(f"too many {self.what}: {self.max_calls} per visitor in {self.window_s / 60:g} "
                                  f"minutes; try again in {wait / 60:.0f} min {wait % 60:.0f} s")
            calls.append(now)
