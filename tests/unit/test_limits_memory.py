"""Behaviour of the in-process rate limiter.

The checks are written against the RateLimiter protocol so that the Redis integration tests
run the very same cases (tests/integration/test_redis_limits.py imports ``CHECKS``).
Levels are compared approximately: a little refill happens between two calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from genaiops.security.limits.base import Bucket, Budget, RateLimiter
from genaiops.security.limits.memory import MemoryLimiter

Check = Callable[[RateLimiter], Awaitable[None]]


def rpm(key: str, per_minute: float, cost: float = 1) -> Bucket:
    return Bucket(key, capacity=per_minute, rate=per_minute / 60, cost=cost, unit="requests")


def approx(value: float) -> object:
    # At most a few tenths of a request refill between calls, even on a loaded machine
    # (the Redis variant makes round trips between them).
    return pytest.approx(value, abs=0.15)


async def check_bucket_admits_capacity_then_refuses(limiter: RateLimiter) -> None:
    bucket = rpm("key:a:rpm", 3)
    for left in (2, 1, 0):
        decision = await limiter.acquire([bucket], [])
        assert decision.allowed
        assert decision.refused_by is None
        assert decision.remaining == {"key:a:rpm": approx(left)}
    refused = await limiter.acquire([bucket], [])
    assert not refused.allowed
    assert refused.refused_by == "key:a:rpm"
    # One request per 20 s refills; almost nothing has refilled yet.
    assert 17 < refused.retry_after_s <= 20
    assert refused.remaining == {"key:a:rpm": approx(0)}


async def check_refusal_charges_nothing(limiter: RateLimiter) -> None:
    wide, narrow = rpm("key:wide", 10), rpm("tenant:narrow", 1)
    assert (await limiter.acquire([wide, narrow], [])).allowed
    refused = await limiter.acquire([wide, narrow], [])
    assert not refused.allowed
    assert refused.refused_by == "tenant:narrow"
    # A budget refusal leaves the buckets alone as well.
    day = Budget("tenant:day", limit=5, cost=6, ttl_s=3600)
    refused = await limiter.acquire([wide], [day])
    assert refused.refused_by == "tenant:day"
    # Only the first, admitted request was charged to the wide bucket.
    decision = await limiter.acquire([wide], [])
    assert decision.remaining == {"key:wide": approx(8)}


async def check_bucket_refills_over_time(limiter: RateLimiter) -> None:
    # One request a second: the third call is refused unless a whole second passed.
    fast = Bucket("key:fast", capacity=2, rate=1, cost=1, unit="requests")
    assert (await limiter.acquire([fast], [])).allowed
    assert (await limiter.acquire([fast], [])).allowed
    assert not (await limiter.acquire([fast], [])).allowed
    # Long enough to refill more than the capacity: the level is capped at capacity.
    await asyncio.sleep(2.5)
    decision = await limiter.acquire([fast], [])
    assert decision.allowed
    assert decision.remaining == {"key:fast": pytest.approx(1)}


async def check_settle_can_go_negative(limiter: RateLimiter) -> None:
    tpm = Bucket("key:tpm", capacity=100, rate=100 / 60, cost=10, unit="tokens")
    assert (await limiter.acquire([tpm], [])).allowed
    await limiter.settle([replace(tpm, cost=150)], [])
    refused = await limiter.acquire([replace(tpm, cost=1)], [])
    assert not refused.allowed
    assert refused.refused_by == "key:tpm"
    # Level is about -60: 61 tokens to refill at 100/60 per second.
    assert refused.retry_after_s == pytest.approx(61 / (100 / 60), abs=2)
    assert refused.remaining == {"key:tpm": 0}


async def check_budget_refuses_over_limit(limiter: RateLimiter) -> None:
    day = Budget("tenant:t:day", limit=100, cost=60, ttl_s=3600)
    decision = await limiter.acquire([], [day])
    assert decision.allowed
    assert decision.remaining == {"tenant:t:day": 40}
    refused = await limiter.acquire([], [day])
    assert not refused.allowed
    assert refused.refused_by == "tenant:t:day"
    assert refused.retry_after_s == 3600.0
    assert refused.remaining == {"tenant:t:day": 40}
    assert (await limiter.acquire([], [replace(day, cost=40)])).remaining == {"tenant:t:day": 0}
    # settle charges past the limit without refusing.
    await limiter.settle([], [replace(day, cost=5)])
    assert (await limiter.acquire([], [replace(day, cost=0)])).remaining == {"tenant:t:day": -5}


async def check_seed_budget_keeps_existing_counter(limiter: RateLimiter) -> None:
    month = Budget("tenant:s:month", limit=100, cost=10, ttl_s=3600)
    await limiter.seed_budget("tenant:s:month", 50, 3600)
    assert (await limiter.acquire([], [month])).remaining == {"tenant:s:month": 40}
    await limiter.seed_budget("tenant:s:month", 0, 3600)
    assert (await limiter.acquire([], [month])).remaining == {"tenant:s:month": 30}


async def check_budget_resets_after_its_period(limiter: RateLimiter) -> None:
    ended = Budget("tenant:e:day", limit=1, cost=1, ttl_s=0)
    assert (await limiter.acquire([], [ended])).allowed
    # The period is over once charged: the next request starts a new counter.
    assert (await limiter.acquire([], [ended])).allowed


async def check_settle_gives_back_a_negative_cost(limiter: RateLimiter) -> None:
    tpm = Bucket("key:refund", capacity=100, rate=100 / 60, cost=30, unit="tokens")
    day = Budget("tenant:refund:day", limit=100, cost=30, ttl_s=3600)
    assert (await limiter.acquire([tpm], [day])).allowed
    await limiter.settle([replace(tpm, cost=-30)], [replace(day, cost=-30)])
    peek = [replace(tpm, cost=0)], [replace(day, cost=0)]
    assert (await limiter.acquire(*peek)).remaining == {
        "key:refund": approx(100),
        "tenant:refund:day": 100,
    }
    # A refund never fills a bucket past its capacity nor a budget below zero.
    await limiter.settle([replace(tpm, cost=-50)], [replace(day, cost=-50)])
    assert (await limiter.acquire(*peek)).remaining == {
        "key:refund": approx(100),
        "tenant:refund:day": 100,
    }
    assert (await limiter.acquire([replace(tpm, cost=100)], [replace(day, cost=100)])).allowed


async def check_seeded_budget_without_a_counter_asks_to_be_seeded(limiter: RateLimiter) -> None:
    rpm = Bucket("key:seed", capacity=5, rate=5 / 60, cost=1, unit="requests")
    day = Budget("tenant:seed:day", limit=100, cost=10, ttl_s=3600, seeded=True)
    first = await limiter.acquire([rpm], [day])
    assert not first.allowed and first.unseeded == ("tenant:seed:day",)
    # Nothing was charged, and settling does not start the counter at zero either.
    await limiter.settle([], [replace(day, cost=7)])
    assert (await limiter.acquire([rpm], [day])).unseeded == ("tenant:seed:day",)
    await limiter.seed_budget("tenant:seed:day", 60, 3600)
    decision = await limiter.acquire([rpm], [day])
    assert decision.allowed and not decision.unseeded
    assert decision.remaining == {"key:seed": 4, "tenant:seed:day": 30}


CHECKS: list[Check] = [
    check_bucket_admits_capacity_then_refuses,
    check_refusal_charges_nothing,
    check_bucket_refills_over_time,
    check_settle_can_go_negative,
    check_budget_refuses_over_limit,
    check_seed_budget_keeps_existing_counter,
    check_budget_resets_after_its_period,
    check_settle_gives_back_a_negative_cost,
    check_seeded_budget_without_a_counter_asks_to_be_seeded,
]


async def run_check(factory: Callable[[], RateLimiter], check: Check) -> None:
    limiter = factory()
    try:
        await check(limiter)
    finally:
        await limiter.close()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_memory_limiter(check: Check) -> None:
    asyncio.run(run_check(MemoryLimiter, check))


def test_memory_limiter_forgets_stale_entries_every_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Budgets of past periods and buckets full again are dropped by a sweep that runs once
    a minute, whatever the number of keys: memory stays bounded by recent traffic."""
    from genaiops.security.limits import memory

    clock = [1000.0]
    monkeypatch.setattr(memory.time, "monotonic", lambda: clock[0])

    async def scenario() -> None:
        limiter = MemoryLimiter()
        for i in range(300):
            bucket = rpm(f"key:{i}:rpm", 60)
            day = Budget(f"key:{i}:day", limit=100, cost=1, ttl_s=120)
            assert (await limiter.acquire([bucket], [day])).allowed
        clock[0] += 700  # past the budgets' period; every bucket untouched for 11 minutes
        kept = rpm("key:fresh:rpm", 60)
        assert (await limiter.acquire([kept], [])).allowed
        assert list(limiter._buckets) == ["key:fresh:rpm"] and limiter._budgets == {}
        # The next sweep waits a minute.
        assert (await limiter.acquire([rpm("key:later:rpm", 60)], [])).allowed
        assert len(limiter._buckets) == 2
        await limiter.close()

    asyncio.run(scenario())
