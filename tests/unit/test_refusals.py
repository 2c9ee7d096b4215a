"""The sampler that keeps refused credentials from growing the audit log at will."""

from __future__ import annotations

from genaiops.security.refusals import RefusalSampler


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_recorded_then_counted_and_summed_when_its_minute_ends() -> None:
    clock = Clock()
    sampler = RefusalSampler(3, clock=clock, wall=clock)
    group = ("10.0.0.9", "invalid_api_key", None)
    verdicts = [sampler.admit(group, None, "/v1/models") for _ in range(10)]
    assert [own for own, _ in verdicts] == [True] * 3 + [False] * 7
    assert all(closed == [] for _, closed in verdicts)
    # Another client has its own budget.
    assert sampler.admit(("10.0.0.10", "invalid_api_key", None), None, "/v1/models")[0]
    clock.now += 61
    own, closed = sampler.admit(("10.0.0.11", "missing_api_key", None), None, "/v1/chat")
    assert own
    (summary,) = closed  # 10.0.0.10 had nothing suppressed: no record for it
    assert summary.group == group and summary.count == 7
    assert summary.detail()["paths"] == ["/v1/models"] and summary.detail()["count"] == 7
    # A new minute, a new budget.
    assert sampler.admit(group, None, "/v1/models")[0]
    for _ in range(3):  # two more recorded, the last one counted
        sampler.admit(group, None, "/v1/models")
    assert sampler.expired() == []  # nothing due yet
    clock.now += 61
    # The request path closes what is due, without waiting for another refusal.
    assert [s.count for s in sampler.expired()] == [1]
    assert sampler.expired() == []


def test_attempts_on_one_key_are_grouped_apart_and_filed_under_its_tenant() -> None:
    clock = Clock()
    sampler = RefusalSampler(1, clock=clock, wall=clock)
    key = ("10.0.0.9", "invalid_api_key", "k123")
    assert sampler.admit(key, "acme", "/v1/models")[0]
    assert not sampler.admit(key, "acme", "/v1/models")[0]
    assert sampler.admit(("10.0.0.9", "invalid_api_key", None), None, "/v1/models")[0]
    (summary,) = sampler.drain()  # at shutdown
    assert summary.tenant == "acme" and summary.detail()["key_id"] == "k123"
    assert sampler.drain() == []


def test_groups_are_bounded_and_zero_records_every_refusal() -> None:
    clock = Clock()
    sampler = RefusalSampler(1, max_groups=2, clock=clock, wall=clock)
    a, b, c = (("a", "r", None), ("b", "r", None), ("c", "r", None))
    sampler.admit(a, None, "/")
    sampler.admit(a, None, "/")  # suppressed
    sampler.admit(b, None, "/")
    own, closed = sampler.admit(c, None, "/")  # a third group closes the oldest early
    assert own and [s.group for s in closed] == [a]
    every = RefusalSampler(0)
    assert all(every.admit(a, None, "/")[0] for _ in range(100))


def test_many_sources_share_one_summary_past_the_installations_budget() -> None:
    clock = Clock()
    sampler = RefusalSampler(2, clock=clock, wall=clock)  # 40 records a minute in all
    own = [sampler.admit((f"10.0.{i // 250}.{i % 250}", "invalid_api_key", None), None, "/")[0]
           for i in range(100)]  # fmt: skip
    assert sum(own) == 40
    clock.now += 61
    summaries = sampler.expired()
    assert [(s.group, s.count) for s in summaries] == [(("*", "invalid_api_key", None), 60)]
    # IPv6 addresses of one /64 network are one source.
    first = sampler.admit(("2001:db8:1:2::1", "invalid_api_key", None), None, "/")
    second = sampler.admit(("2001:db8:1:2:ffff::9", "invalid_api_key", None), None, "/")
    third = sampler.admit(("2001:db8:1:2:aaaa::5", "invalid_api_key", None), None, "/")
    assert (first[0], second[0], third[0]) == (True, True, False)
    (summary,) = sampler.drain()
    assert summary.detail()["client"] == "2001:db8:1:2::/64" and summary.count == 1
