"""Which refused credentials get an audit record of their own.

Refusing a credential costs the audit log a row, and refusing is something anyone who
can reach the port can make the server do: without a bound, a flood of bad keys would
grow the database (and fill the disk) at the attacker's pace. Refusals are grouped by
(client address, reason, key named); the first ``per_minute`` of each group in a minute
are recorded one by one, as before, and the rest of that minute are counted and recorded
as one ``auth.failure_suppressed`` record with the count, once the minute is over (at the
next request or refusal after that, or at shutdown). At most ``max_groups`` groups are tracked; the
oldest is closed early when more arrive. A minute also has a budget for the whole
installation (``TOTAL_FACTOR`` times the group's): past it, refusals from sources not seen
yet that minute are summed in one group per reason (client ``*``), so many sources (a
botnet) cannot buy a record each either. IPv6 clients are grouped by their /64 network,
which one host can fill with addresses. ``genaiops_auth_failures_total`` in /metrics
still counts every refusal.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

WINDOW_S = 60.0
SUPPRESSED = "auth.failure_suppressed"
# Individual records a minute for the whole installation, as a multiple of the per-group
# budget; past it, refusals from sources not seen this minute are summed in one group.
TOTAL_FACTOR = 20

Group = tuple[str | None, str, str | None]  # client address, reason, key id named


@dataclass
class _Window:
    opened: float  # wall-clock seconds
    closes: float  # monotonic seconds
    recorded: int = 0
    suppressed: int = 0
    tenant: str | None = None
    paths: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Suppressed:
    """A closed window with refusals that were counted, not recorded."""

    group: Group
    tenant: str | None
    count: int
    opened: float
    closed: float
    paths: tuple[str, ...]

    def detail(self) -> dict[str, Any]:
        client, reason, key_id = self.group
        out: dict[str, Any] = {"client": client, "reason": reason, "count": self.count,
                               "from": round(self.opened, 3), "to": round(self.closed, 3),
                               "paths": list(self.paths)}  # fmt: skip
        if key_id is not None:
            out["key_id"] = key_id
        return out


def _network(client: str | None) -> str | None:
    """The client address, or its /64 network for IPv6."""
    if client is None or ":" not in client:
        return client
    try:
        return str(ipaddress.ip_network(f"{client}/64", strict=False))
    except ValueError:
        return client


class RefusalSampler:
    def __init__(
        self,
        per_minute: int,
        max_groups: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ):
        self.per_minute = per_minute
        self.max_groups = max_groups
        self._clock = clock
        self._wall = wall
        self._windows: OrderedDict[Group, _Window] = OrderedDict()  # oldest first
        self._lock = threading.Lock()
        # Individual records of the current minute, all groups together.
        self._total_closes, self._total = 0.0, 0

    def admit(self, group: Group, tenant: str | None, path: str) -> tuple[bool, list[Suppressed]]:
        """Whether this refusal gets its own record, and the windows that closed since the
        last call (to be recorded as ``auth.failure_suppressed``)."""
        if self.per_minute <= 0:
            return True, []
        client, reason, key_id = group
        group = (_network(client), reason, key_id)
        with self._lock:
            now = self._clock()
            closed = self._close(lambda w: w.closes <= now)
            if now >= self._total_closes:
                self._total_closes, self._total = now + WINDOW_S, 0
            over = self._total >= self.per_minute * TOTAL_FACTOR
            if over and group not in self._windows:
                # Past the installation's budget, new sources (a botnet, rotating IPv6
                # addresses) share one group per reason: one summary, not one per source.
                group, tenant = ("*", reason, None), None
            window = self._windows.get(group)
            if window is None:
                if len(self._windows) >= self.max_groups:
                    closed += self._close(lambda _: True, limit=1)
                window = _Window(self._wall(), now + WINDOW_S, tenant=tenant)
                self._windows[group] = window
            if window.recorded < self.per_minute and not over:
                window.recorded += 1
                self._total += 1
                return True, closed
            window.suppressed += 1
            if len(window.paths) < 5:
                window.paths.add(path)
            return False, closed

    def expired(self) -> list[Suppressed]:
        """The windows whose minute is over, closed now: called on the request path, so a
        flood that stopped is summed up soon, not at shutdown. Nothing due costs a look
        at the oldest window."""
        if not self._windows:
            return []
        with self._lock:
            now = self._clock()
            return self._close(lambda w: w.closes <= now)

    def drain(self) -> list[Suppressed]:
        """Every open window's suppressed count (at shutdown)."""
        with self._lock:
            return self._close(lambda _: True)

    def _close(self, due: Callable[[_Window], bool], limit: int | None = None) -> list[Suppressed]:
        """Close the oldest windows while ``due`` (at most ``limit`` of them)."""
        out: list[Suppressed] = []
        closed = 0
        while self._windows and (limit is None or closed < limit):
            group, window = next(iter(self._windows.items()))
            if not due(window):
                break  # windows open in order, so the rest close later still
            del self._windows[group]
            closed += 1
            if window.suppressed:
                out.append(Suppressed(group, window.tenant, window.suppressed, window.opened,
                                      self._wall(), tuple(sorted(window.paths))))  # fmt: skip
        return out
