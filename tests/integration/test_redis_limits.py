"""RedisLimiter against a real redis-server: the MemoryLimiter cases, plus what only a
shared limiter must get right (several replicas, concurrent requests, Redis down)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from genaiops.config import load_settings
from genaiops.errors import RateLimited, UpstreamError
from genaiops.security.limits.base import Bucket, Budget
from genaiops.security.limits.redis import RedisLimiter
from genaiops.security.principal import Limits, Principal
from genaiops.security.service import SecurityService
from tests.unit.test_limits_memory import CHECKS, Check, run_check

pytestmark = pytest.mark.integration


def free_port() -> int:
    # Bound and released at once: nothing listens there afterwards.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique_prefix() -> str:
    # Tests share one server; their own prefix keeps their state apart.
    return f"test-{uuid.uuid4().hex}"


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_redis_limiter(redis_url: str, check: Check) -> None:
    prefix = unique_prefix()
    asyncio.run(run_check(lambda: RedisLimiter(redis_url, prefix=prefix), check))


def test_two_replicas_share_one_bucket(redis_url: str) -> None:
    async def scenario() -> int:
        prefix = unique_prefix()
        replicas = [RedisLimiter(redis_url, prefix=prefix) for _ in range(2)]
        bucket = Bucket("key:shared", capacity=5, rate=5 / 3600, cost=1, unit="requests")
        try:
            admitted = 0
            for i in range(10):
                admitted += (await replicas[i % 2].acquire([bucket], [])).allowed
            return admitted
        finally:
            for replica in replicas:
                await replica.close()

    assert asyncio.run(scenario()) == 5


def test_concurrent_acquires_never_exceed_capacity(redis_url: str) -> None:
    async def scenario() -> tuple[int, int]:
        prefix = unique_prefix()
        replicas = [RedisLimiter(redis_url, prefix=prefix) for _ in range(2)]
        bucket = Bucket("key:race", capacity=20, rate=20 / 3600, cost=1, unit="requests")
        budget = Budget("tenant:race:day", limit=30, cost=1, ttl_s=3600)
        try:
            by_bucket = await asyncio.gather(
                *(replicas[i % 2].acquire([bucket], []) for i in range(50))
            )
            by_budget = await asyncio.gather(
                *(replicas[i % 2].acquire([], [budget]) for i in range(50))
            )
            return sum(d.allowed for d in by_bucket), sum(d.allowed for d in by_budget)
        finally:
            for replica in replicas:
                await replica.close()

    # The refill over the test's duration is far below one request.
    assert asyncio.run(scenario()) == (20, 30)


def test_unreachable_redis_raises_upstream_error() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"

    async def scenario() -> None:
        limiter = RedisLimiter(url, prefix=unique_prefix())
        bucket = Bucket("key:down", capacity=1, rate=1, cost=1, unit="requests")
        try:
            with pytest.raises(UpstreamError) as acquire_error:
                await limiter.acquire([bucket], [])
            assert url in str(acquire_error.value)
            assert "\n" not in str(acquire_error.value)
            with pytest.raises(UpstreamError):
                await limiter.settle([bucket], [])
            with pytest.raises(UpstreamError):
                await limiter.seed_budget("tenant:down:day", 1, 60)
        finally:
            await limiter.close()

    asyncio.run(scenario())


def test_password_is_not_in_the_error() -> None:
    url = f"redis://user:s3cret@127.0.0.1:{free_port()}/0"

    async def scenario() -> str:
        limiter = RedisLimiter(url, prefix=unique_prefix())
        try:
            with pytest.raises(UpstreamError) as error:
                await limiter.seed_budget("tenant:down:day", 1, 60)
            return str(error.value)
        finally:
            await limiter.close()

    message = asyncio.run(scenario())
    assert "s3cret" not in message
    assert "127.0.0.1" in message


def test_budget_lost_by_redis_is_reseeded_from_the_usage_table(
    redis_url: str, tmp_path: Path
) -> None:
    """A Redis that loses a budget's counter mid-period (restart without persistence,
    eviction) must not hand out a fresh budget: the next admission re-seeds it."""
    prefix = unique_prefix()
    settings = load_settings(
        data_dir=tmp_path,
        limits={"backend": "redis", "redis_url": redis_url, "redis_prefix": prefix},
    )
    service = SecurityService(settings)
    service.start()
    system = Principal(tenant="system", role="admin", actor="test", via="cli")
    new = service.create_key(
        system, tenant="acme", role="user", limits=Limits(budget_tokens=100, budget_period="day")
    )

    async def scenario() -> None:
        try:
            await lose_and_reseed()
        finally:
            await service.close()

    async def lose_and_reseed() -> None:
        principal = await service.authenticate(f"Bearer {new.secret}")
        admission = await service.admit(principal, 60)
        await service.settle(admission, 60, 30)
        service.record_inference(
            principal,
            model="m",
            status=200,
            request_id="r",
            latency_s=0.1,
            prompt_tokens=60,
            completion_tokens=30,
        )
        service.recorder.flush()
        client = aioredis.Redis.from_url(redis_url)
        try:
            lost = await client.delete(*[k async for k in client.scan_iter(f"{prefix}:budget:*")])
        finally:
            await client.aclose()
        assert lost == 1
        with pytest.raises(RateLimited) as info:
            await service.admit(principal, 20)
        assert info.value.code == "budget_exceeded"
        await service.admit(principal, 10)  # 90 spent + 10 fits exactly

    asyncio.run(scenario())


def test_a_charge_redis_cannot_take_after_the_answer_is_logged_not_raised(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis lost between the admission and the end of the answer: the answer already went
    to the client, so settling it must not turn it into an error (a 502 for an answer the
    caller paid for). The lost charge is logged."""
    settings = load_settings(
        data_dir=tmp_path,
        limits={"backend": "redis", "redis_url": redis_url, "redis_prefix": unique_prefix()},
    )
    service = SecurityService(settings)
    service.start()
    system = Principal(tenant="system", role="admin", actor="test", via="cli")
    new = service.create_key(system, tenant="acme", role="user", limits=Limits(tpm=10_000))

    async def scenario() -> None:
        principal = await service.authenticate(f"Bearer {new.secret}")
        admission = await service.admit(principal, 50)
        working = service.limiter
        # The same limiter, reconnecting to where Redis no longer answers.
        gone = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0", prefix="gone")
        service._limiter = gone
        try:
            await service.settle(admission, 50, 40)  # does not raise
        finally:
            await gone.close()
            service._limiter = working
            await service.close()

    with caplog.at_level("WARNING", logger="genaiops.security"):
        asyncio.run(scenario())
    assert any("tokens not settled" in r.getMessage() for r in caplog.records)
