"""Shared rate limiter on Redis, for several gateway replicas that must enforce one limit.

It owns the limiter state under ``{prefix}:rl:`` (token buckets, as hashes {level, ts}) and
``{prefix}:budget:`` (budget counters) and nothing else in the database. The semantics are
MemoryLimiter's exactly; only where the state lives differs.

Trade-offs:
- Every check-and-charge is one Lua script, so Redis runs it atomically: two replicas can
  never both see the last unit of a bucket, and a refused request charges nothing, without
  WATCH/MULTI retry loops. The cost is a round trip per request and a hard dependency on
  Redis; when Redis is unreachable requests fail with UpstreamError rather than being let
  through unlimited.
- The clock is Redis's own (TIME), not the replicas': replica clocks drift apart, and a
  bucket refilled by one replica's clock and charged by another's would gain or lose units.
  Scripts that call TIME and then write need effect replication (Redis 5 or later).
- All of a request's keys go to one script, so on Redis Cluster they must share a slot;
  use a single primary (with Sentinel or a managed failover) instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from genaiops.errors import ConfigError, UpstreamError
from genaiops.security.limits.base import Bucket, Budget, Decision

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.commands.core import AsyncScript
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ConfigError(
        "limits.backend = 'redis' needs the redis package: pip install 'redis>=5'"
    ) from exc

# KEYS: the buckets, then the budgets. ARGV[1]: the number of buckets, then capacity, rate,
# cost for each bucket, then limit, cost, ttl_s, seeded (1 or 0) for each budget. Numbers
# go back to the client as strings because Redis truncates Lua numbers in replies to
# integers.
_COMMON = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nb = tonumber(ARGV[1])
local nbud = #KEYS - nb
local function num(x) return string.format('%.17g', x) end
local function bucket(i)
  return tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i]), tonumber(ARGV[3*i+1])
end
local function budget(j)
  local a = 1 + 3*nb + 4*(j-1)
  return tonumber(ARGV[a+1]), tonumber(ARGV[a+2]), tonumber(ARGV[a+3]), ARGV[a+4] == '1'
end
local function missing(j)
  local _, _, _, seeded = budget(j)
  return seeded and redis.call('EXISTS', KEYS[nb+j]) == 0
end
local function level(i)
  local cap, rate = bucket(i)
  local s = redis.call('HMGET', KEYS[i], 'level', 'ts')
  if not s[1] then return cap end
  -- A server clock stepped backwards must not drain the bucket.
  return math.min(cap, tonumber(s[1]) + math.max(now - tonumber(s[2]), 0) * rate)
end
local function used(j)
  return tonumber(redis.call('GET', KEYS[nb+j]) or '0')
end
local function store_level(i, lvl)
  local cap, rate = bucket(i)
  redis.call('HSET', KEYS[i], 'level', num(lvl), 'ts', num(now))
  -- Once the bucket would be full again the key can go: a missing bucket reads as full.
  local ms = 60000
  if rate > 0 then ms = ms + math.ceil((cap - lvl) / rate * 1000) end
  redis.call('PEXPIRE', KEYS[i], string.format('%d', ms))
end
local function store_used(j, n)
  local _, _, ttl = budget(j)
  if ttl > 0 then
    redis.call('SET', KEYS[nb+j], num(n), 'EX', string.format('%d', ttl))
  else
    redis.call('DEL', KEYS[nb+j])
  end
end
"""

_ACQUIRE = (
    _COMMON
    + """
local absent = {2}
for j = 1, nbud do
  if missing(j) then absent[#absent+1] = nb + j - 1 end
end
if #absent > 1 then return absent end
local levels, spent = {}, {}
for i = 1, nb do levels[i] = level(i) end
for j = 1, nbud do spent[j] = used(j) end
for i = 1, nb do
  local cap, rate, cost = bucket(i)
  if levels[i] < cost then
    return {0, num((cost - math.min(levels[i], cap)) / rate), i - 1, num(math.max(levels[i], 0))}
  end
end
for j = 1, nbud do
  local limit, cost, ttl = budget(j)
  if spent[j] + cost > limit then
    return {0, num(ttl), nb + j - 1, num(limit - spent[j])}
  end
end
local out = {1, '0', -1}
for i = 1, nb do
  local _, _, cost = bucket(i)
  store_level(i, levels[i] - cost)
  out[#out+1] = num(levels[i] - cost)
end
for j = 1, nbud do
  local limit, cost = budget(j)
  store_used(j, spent[j] + cost)
  out[#out+1] = num(limit - spent[j] - cost)
end
return out
"""
)

_SETTLE = (
    _COMMON
    + """
for i = 1, nb do
  local cap, _, cost = bucket(i)
  store_level(i, math.min(cap, level(i) - cost))
end
for j = 1, nbud do
  local _, cost = budget(j)
  if not missing(j) then store_used(j, math.max(0, used(j) + cost)) end
end
return 1
"""
)


def _redact(url: str) -> str:
    # The URL may carry a password; error messages end up in logs and client answers.
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class RedisLimiter:
    def __init__(self, url: str, *, prefix: str = "genaiops") -> None:
        self._url = _redact(url)
        self._prefix = prefix
        try:
            self._client = aioredis.Redis.from_url(
                url,
                decode_responses=True,
                # A limiter that hangs stalls every request; fail fast and let the gateway
                # answer an error. Two quick retries ride out a dropped connection.
                socket_connect_timeout=2.0,
                socket_timeout=2.0,
                retry=Retry(ExponentialWithJitterBackoff(cap=0.2, base=0.01), 2),
            )
        except ValueError as exc:
            raise ConfigError(f"invalid limits.redis_url {self._url!r}: {exc}") from exc
        self._acquire = self._client.register_script(_ACQUIRE)
        self._settle = self._client.register_script(_SETTLE)

    def _fail(self, exc: RedisError | OSError) -> UpstreamError:
        if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
            return UpstreamError(f"rate limiter: cannot reach Redis at {self._url}")
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return UpstreamError(f"rate limiter: Redis at {self._url} failed: {detail}")

    async def _run(
        self, script: AsyncScript, buckets: Sequence[Bucket], budgets: Sequence[Budget]
    ) -> Any:
        keys = [f"{self._prefix}:rl:{b.key}" for b in buckets]
        keys += [f"{self._prefix}:budget:{g.key}" for g in budgets]
        args: list[float | int] = [len(buckets)]
        for b in buckets:
            args += [float(b.capacity), float(b.rate), float(b.cost)]
        for g in budgets:
            args += [int(g.limit), int(g.cost), int(g.ttl_s), int(g.seeded)]
        try:
            return await script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise self._fail(exc) from exc

    async def acquire(self, buckets: Sequence[Bucket], budgets: Sequence[Budget]) -> Decision:
        if not buckets and not budgets:
            return Decision(True)
        reply = await self._run(self._acquire, buckets, budgets)
        names = [b.key for b in buckets] + [g.key for g in budgets]

        def value(index: int, raw: str) -> float:
            # Budgets count whole units, as MemoryLimiter reports them.
            return int(float(raw)) if index >= len(buckets) else float(raw)

        if int(reply[0]) == 2:
            return Decision(False, unseeded=tuple(names[int(i)] for i in reply[1:]))
        if int(reply[0]) == 0:
            i = int(reply[2])
            return Decision(False, float(reply[1]), names[i], {names[i]: value(i, reply[3])})
        remaining = {names[i]: value(i, raw) for i, raw in enumerate(reply[3:])}
        return Decision(True, 0.0, None, remaining)

    async def settle(self, buckets: Sequence[Bucket], budgets: Sequence[Budget]) -> None:
        if buckets or budgets:
            await self._run(self._settle, buckets, budgets)

    async def seed_budget(self, key: str, used: int, ttl_s: int) -> None:
        if ttl_s <= 0:
            return  # The period is over; MemoryLimiter's entry would already be expired.
        try:
            await self._client.set(f"{self._prefix}:budget:{key}", used, nx=True, ex=ttl_s)
        except (RedisError, OSError) as exc:
            raise self._fail(exc) from exc

    async def close(self) -> None:
        await self._client.aclose()
