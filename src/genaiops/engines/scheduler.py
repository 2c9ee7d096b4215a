"""Per-model scheduler: a bounded asyncio queue in front of each engine.

Admission is synchronous: a request either gets a place (one of ``max_concurrency``
running slots or ``max_queue`` waiting places) or is refused at once with Overloaded, which
the server turns into 429 + Retry-After, instead of piling up work the model can never
finish. Workers (as many as the engine runs at once, one for llama.cpp) take jobs in
order. Every job carries a CancelToken and a deadline: a client that goes away or runs out
of time cancels its job, which gives its queue place back at once (and never runs) if still
queued and stops within one token if running. A closed scheduler (its model unloaded or the
server stopping) refuses new work at once with ModelNotReady, and the jobs still queued when
it closes fail with that error instead of waiting for a worker that no longer exists.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from genaiops.engines.base import (
    CancelToken,
    Engine,
    Finished,
    GenerationEvent,
    PreparedRequest,
)
from genaiops.errors import GenerationTimeout, ModelNotReady, Overloaded

_END = object()
_TIMEOUT = object()


@dataclass(eq=False)  # compared and hashed by identity: a scheduler keeps a set of them
class _Job:
    prepared: PreparedRequest | None  # None once withdrawn: the prompt is not kept queued
    cancel: CancelToken = field(default_factory=CancelToken)
    events: asyncio.Queue[object] = field(default_factory=asyncio.Queue)
    timer: asyncio.TimerHandle | None = None
    taken: bool = False  # a worker has picked it up
    withdrawn: bool = False  # cancelled while queued; its place was given back


@dataclass
class SchedulerStats:
    running: int = 0
    queued: int = 0
    completed: int = 0
    cancelled: int = 0
    rejected: int = 0
    timed_out: int = 0
    failed: int = 0
    generated_tokens: int = 0


class Ticket:
    """A client's handle on one admitted job: iterate for events, close to cancel."""

    def __init__(self, job: _Job, scheduler: Scheduler):
        self._job = job
        self._scheduler = scheduler
        self._done = False

    def __aiter__(self) -> AsyncIterator[GenerationEvent]:
        return self._events()

    @property
    def stopping(self) -> bool:
        """Whether the model's scheduler stopped taking work (its server is stopping)."""
        return self._scheduler.closed

    async def _events(self) -> AsyncIterator[GenerationEvent]:
        job = self._job
        while not self._done:
            # The deadline is one timer per job that drops a sentinel into this queue, not
            # a timeout per token: the per-token path stays a plain queue read.
            item = await job.events.get()
            if item is _TIMEOUT:
                self._scheduler.stats.timed_out += 1
                await self.aclose()
                raise GenerationTimeout(
                    f"request to '{self._scheduler.engine.name}' did not finish within "
                    f"{self._scheduler.timeout_s:g} s"
                )
            if item is _END:
                self._done = True
                return
            if isinstance(item, BaseException):
                self._done = True
                raise item
            yield item  # type: ignore[misc]

    async def aclose(self) -> None:
        self._done = True
        self._job.cancel.cancel()
        if self._job.timer is not None:
            self._job.timer.cancel()
        self._scheduler._withdraw(self._job)

    @property
    def cancel_token(self) -> CancelToken:
        return self._job.cancel


class Scheduler:
    def __init__(self, engine: Engine, *, max_queue: int, timeout_s: float, retry_after_s: int):
        self.engine = engine
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.stats = SchedulerStats()
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._admitted = 0
        self._workers: list[asyncio.Task[None]] = []
        self._closed = False
        self._why = "was unloaded"
        self._running: set[_Job] = set()

    @property
    def capacity(self) -> int:
        return self.engine.max_concurrency + self.max_queue

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> None:
        self._closed = False
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._worker(), name=f"scheduler-{self.engine.name}-{i}")
                for i in range(self.engine.max_concurrency)
            ]

    def drain(self) -> None:
        """Stop taking work (new requests get 503) and answer the queued ones 503 at once,
        so their clients retry elsewhere; what runs goes on until it ends or ``close``."""
        self._closed = True
        self._why = "is stopping with its server"
        self._fail_queued()

    async def close(self) -> None:
        self._closed = True
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        self._fail_queued()

    def stop_running(self) -> None:
        """End the running requests with a 503 (their clients get an error, in-band once a
        stream has started) and stop their generation: the server's grace period is over."""
        for job in list(self._running):
            job.events.put_nowait(
                ModelNotReady(
                    f"model '{self.engine.name}' stopped with its server before the answer "
                    "ended; retry the request"
                )
            )
            job.cancel.cancel()

    def _fail_queued(self) -> None:
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if job.withdrawn:
                continue
            job.taken = True
            self.stats.queued -= 1
            self._admitted -= 1
            if job.timer is not None:
                job.timer.cancel()
            job.events.put_nowait(self._unavailable())

    def _unavailable(self) -> ModelNotReady:
        return ModelNotReady(f"model '{self.engine.name}' {self._why}; retry the request")

    def submit(self, prepared: PreparedRequest) -> Ticket:
        """Admit a request or raise Overloaded (ModelNotReady once closed); never waits."""
        if self._closed:
            raise self._unavailable()
        if self._admitted >= self.capacity:
            self.stats.rejected += 1
            raise Overloaded(
                f"model '{self.engine.name}' is at capacity "
                f"({self.engine.max_concurrency} running, {self.max_queue} queued); retry later",
                retry_after=self.retry_after_s,
            )
        self._admitted += 1
        self.stats.queued += 1
        job = _Job(prepared)
        job.timer = asyncio.get_running_loop().call_later(
            self.timeout_s, job.events.put_nowait, _TIMEOUT
        )
        self._queue.put_nowait(job)
        return Ticket(job, self)

    def _withdraw(self, job: _Job) -> None:
        """A job cancelled before a worker took it gives its queue place back at once."""
        if job.taken or job.withdrawn:
            return
        job.withdrawn = True
        # The job stays in the queue until a worker reaches it; its prompt and timer need
        # not (clients that give up and retry behind a long answer would pile them up).
        job.prepared = None
        if job.timer is not None:
            job.timer.cancel()
        self._admitted -= 1
        self.stats.queued -= 1
        self.stats.cancelled += 1

    async def _worker(self) -> None:
        while True:
            job = await self._queue.get()
            if job.withdrawn:
                continue
            job.taken = True
            self.stats.queued -= 1
            try:
                if job.cancel.cancelled:
                    self.stats.cancelled += 1
                    continue
                self.stats.running += 1
                self._running.add(job)
                try:
                    await self._run(job)
                finally:
                    self.stats.running -= 1
                    self._running.discard(job)
            finally:
                self._admitted -= 1
                if job.timer is not None:
                    job.timer.cancel()
                job.events.put_nowait(_END)

    async def _run(self, job: _Job) -> None:
        finished: Finished | None = None
        prepared = job.prepared
        assert prepared is not None  # taken jobs are never withdrawn

        def deliver(event: GenerationEvent) -> None:
            nonlocal finished
            if isinstance(event, Finished):
                finished = event
                self.stats.generated_tokens += event.completion_tokens
            job.events.put_nowait(event)

        relay = getattr(self.engine, "relay", None)
        try:
            if relay is not None:
                # In-process engines put events straight into the job's queue.
                await relay(prepared, job.cancel, deliver)
            else:
                generator = self.engine.generate(prepared, job.cancel)
                async with contextlib.aclosing(generator):  # type: ignore[type-var]
                    async for event in generator:
                        deliver(event)
                        if job.cancel.cancelled:
                            break
        except asyncio.CancelledError:
            job.cancel.cancel()
            raise
        except Exception as exc:  # handed to the waiting client, who maps it to a status
            self.stats.failed += 1
            job.events.put_nowait(exc)
            return
        if finished is not None and finished.reason != "cancelled":
            self.stats.completed += 1
        else:
            self.stats.cancelled += 1
