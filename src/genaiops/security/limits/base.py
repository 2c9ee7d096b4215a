"""The RateLimiter protocol and its value types.

A request is admitted only if every bucket and budget that applies to it (the key's and
the tenant's) has room; then all are charged at once, atomically, so a refused request
costs nothing. Token buckets hold up to ``capacity`` units and refill at ``rate`` per
second (capacity = the per-minute limit, rate = limit / 60), so short bursts pass and the
long-run rate is the limit. Completion tokens are only known afterwards: ``settle`` charges
them, and a bucket may go below zero, which delays the next request instead of letting a
long answer overrun the limit; a negative cost gives back what an estimate overcharged.
Budgets are plain counters that reset at the end of their
period (a UTC day or month).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from genaiops.errors import ConfigError


@dataclass(frozen=True)
class Bucket:
    key: str
    capacity: float
    rate: float  # units per second
    cost: float
    unit: Literal["requests", "tokens"]


@dataclass(frozen=True)
class Budget:
    key: str
    limit: int
    cost: int
    ttl_s: int  # seconds until the period ends
    # A budget whose counter must be seeded from the usage table before it is charged: the
    # limiter reports a missing counter (first use in this process or period, or a Redis
    # that lost its keys) in ``Decision.unseeded`` instead of starting it at zero.
    seeded: bool = False


@dataclass
class Decision:
    allowed: bool
    # Seconds until the refusing bucket or budget has room (0 when allowed).
    retry_after_s: float = 0.0
    # Key of the bucket or budget that refused the request.
    refused_by: str | None = None
    # Units left in each bucket and budget after this request, by key.
    remaining: dict[str, float] = field(default_factory=dict)
    # Budgets (``seeded=True``) that have no counter: nothing was charged; seed them with
    # ``seed_budget`` and ask again.
    unseeded: tuple[str, ...] = ()


class RateLimiter(Protocol):
    async def acquire(self, buckets: Sequence[Bucket], budgets: Sequence[Budget]) -> Decision:
        """Check everything; charge everything only if everything has room."""
        ...

    async def settle(self, buckets: Sequence[Bucket], budgets: Sequence[Budget]) -> None:
        """Charge further costs (completion tokens) without refusing; a negative cost gives
        units back, never past a bucket's capacity or below a budget's zero. A ``seeded``
        budget without a counter is left alone (the next acquire seeds it from the usage
        table, which records this request too)."""
        ...

    async def seed_budget(self, key: str, used: int, ttl_s: int) -> None:
        """Start a budget counter at ``used`` unless it already exists (restart recovery)."""
        ...

    async def close(self) -> None: ...


def create_limiter(backend: str, *, redis_url: str = "", prefix: str = "genaiops") -> RateLimiter:
    if backend == "memory":
        from genaiops.security.limits.memory import MemoryLimiter

        return MemoryLimiter()
    if backend == "redis":
        from genaiops.security.limits.redis import RedisLimiter

        return RedisLimiter(redis_url, prefix=prefix)
    raise ConfigError(f"unknown limits.backend {backend!r}; use 'memory' or 'redis'")
