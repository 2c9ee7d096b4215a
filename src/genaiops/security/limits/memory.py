"""In-process rate limiter: the embedded default. State is per process and per restart
(budgets are re-seeded from the usage table after a restart)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from genaiops.security.limits.base import Bucket, Budget, Decision

# Stale entries (buckets full again, budgets of a past period) are swept this often: the
# cost of a sweep is spread over a minute of requests, however many keys there are.
_SWEEP_EVERY_S = 60.0


class MemoryLimiter:
    def __init__(self) -> None:
        # bucket key -> (level, monotonic time of the level)
        self._buckets: dict[str, tuple[float, float]] = {}
        # budget key -> (used, monotonic expiry)
        self._budgets: dict[str, tuple[int, float]] = {}
        self._next_sweep = time.monotonic() + _SWEEP_EVERY_S

    def _level(self, bucket: Bucket, now: float) -> float:
        state = self._buckets.get(bucket.key)
        if state is None:
            return bucket.capacity
        level, at = state
        return min(bucket.capacity, level + (now - at) * bucket.rate)

    def _used(self, budget: Budget, now: float) -> int:
        state = self._budgets.get(budget.key)
        if state is None or state[1] <= now:
            return 0
        return state[0]

    def _missing(self, budget: Budget, now: float) -> bool:
        state = self._budgets.get(budget.key)
        return budget.seeded and (state is None or state[1] <= now)

    async def acquire(self, buckets: Sequence[Bucket], budgets: Sequence[Budget]) -> Decision:
        now = time.monotonic()
        unseeded = tuple(b.key for b in budgets if self._missing(b, now))
        if unseeded:
            return Decision(False, unseeded=unseeded)
        levels = [self._level(b, now) for b in buckets]
        used = [self._used(b, now) for b in budgets]
        for bucket, level in zip(buckets, levels, strict=True):
            if level < bucket.cost:
                wait = (bucket.cost - min(level, bucket.capacity)) / bucket.rate
                return Decision(False, wait, bucket.key, {bucket.key: max(level, 0.0)})
        for budget, spent in zip(budgets, used, strict=True):
            if spent + budget.cost > budget.limit:
                return Decision(
                    False, float(budget.ttl_s), budget.key, {budget.key: budget.limit - spent}
                )
        remaining: dict[str, float] = {}
        for bucket, level in zip(buckets, levels, strict=True):
            self._buckets[bucket.key] = (level - bucket.cost, now)
            remaining[bucket.key] = level - bucket.cost
        for budget, spent in zip(budgets, used, strict=True):
            self._budgets[budget.key] = (spent + budget.cost, now + budget.ttl_s)
            remaining[budget.key] = budget.limit - spent - budget.cost
        if now >= self._next_sweep:
            self._sweep(now)
        return Decision(True, 0.0, None, remaining)

    async def settle(self, buckets: Sequence[Bucket], budgets: Sequence[Budget]) -> None:
        now = time.monotonic()
        for bucket in buckets:
            level = min(bucket.capacity, self._level(bucket, now) - bucket.cost)
            self._buckets[bucket.key] = (level, now)
        for budget in budgets:
            if self._missing(budget, now):
                continue
            used = max(0, self._used(budget, now) + budget.cost)
            self._budgets[budget.key] = (used, now + budget.ttl_s)

    async def seed_budget(self, key: str, used: int, ttl_s: int) -> None:
        now = time.monotonic()
        state = self._budgets.get(key)
        if state is None or state[1] <= now:
            self._budgets[key] = (used, now + ttl_s)

    def _sweep(self, now: float) -> None:
        # A bucket untouched for ten minutes is full again under any limit of at least one
        # request per ten minutes; forgetting it changes nothing.
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 600}
        self._budgets = {k: v for k, v in self._budgets.items() if v[1] > now}
        self._next_sweep = now + _SWEEP_EVERY_S

    async def close(self) -> None:
        self._buckets.clear()
        self._budgets.clear()
