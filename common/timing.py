"""Wall-clock time per named stage, for benchmarks: ``with timer.stage("encoder"): ...``.

A pipeline holds a :class:`StageTimer` and times its stages into it; nothing is printed or
stored unless someone reads :attr:`StageTimer.seconds`. Nested stages are not supported (the
outer one would count the inner one's time twice).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager


class StageTimer:
    """Accumulated seconds and call counts per stage name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start
            self.calls[name] += 1

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()
