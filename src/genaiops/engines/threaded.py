"""The life of an in-process engine whose model lives on one OS thread.

llama.cpp (OpenMP) slows down by about two thirds when calls arrive from changing threads,
and a torch model is not safe to call from two at once, so each local engine gives its
model one dedicated thread for its whole life. The event loop never touches the model: it
sends jobs through a queue and receives events back with ``call_soon_threadsafe``.

``ThreadedEngine`` owns that plumbing (start, close, the job loop, ``generate``, and
``relay``, which hands each event straight to the scheduler's consumer instead of through
a queue of its own, one task switch fewer per token); subclasses implement ``_load`` (on
the thread, before any job), ``_run`` (one job: emit ``TextDelta``s and a ``Finished``),
``_unload`` and ``prepare``.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from genaiops.engines.base import CancelToken, GenerationEvent, PreparedRequest
from genaiops.errors import GenaiopsError, ModelNotReady

Emit = Callable[[GenerationEvent | BaseException | None], None]


@dataclass
class Job:
    prepared: PreparedRequest
    cancel: CancelToken
    emit: Emit


class ThreadedEngine:
    max_concurrency = 1

    def __init__(self, name: str):
        self.name = name
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._state = "loading"

    @property
    def ready(self) -> bool:
        return self._state == "ready"

    @property
    def state(self) -> str:
        return self._state

    def _load(self) -> None:
        raise NotImplementedError

    def _run(self, job: Job) -> None:
        raise NotImplementedError

    def _unload(self) -> None:
        """Drop the model (on the thread, after the last job)."""

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        loaded: asyncio.Future[None] = loop.create_future()

        def report(exc: BaseException | None) -> None:
            if loaded.done():
                return
            if exc is None:
                loaded.set_result(None)
            else:
                loaded.set_exception(exc)

        self._thread = threading.Thread(
            target=self._thread_main,
            args=(lambda exc: loop.call_soon_threadsafe(report, exc),),
            name=f"genaiops-model-{self.name}",
            daemon=True,
        )
        self._thread.start()
        try:
            await loaded
        except Exception as exc:
            self._state = f"failed: {exc}"
            raise

    async def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._jobs.put(None)
            await asyncio.to_thread(self._thread.join, 30)
        self._state = "closed"

    def _thread_main(self, report: Callable[[BaseException | None], None]) -> None:
        try:
            self._load()
        except BaseException as exc:  # reported to start(); the thread then exits
            report(exc)
            return
        self._state = "ready"
        report(None)
        while True:
            job = self._jobs.get()
            if job is None:
                break
            try:
                self._run(job)
            except BaseException as exc:
                job.emit(exc)
            finally:
                job.emit(None)
        self._unload()

    async def relay(
        self,
        prepared: PreparedRequest,
        cancel: CancelToken,
        deliver: Callable[[GenerationEvent], None],
    ) -> None:
        """Run one job, calling ``deliver`` on the event loop with each event as the model
        thread emits it; returns when the job is over and raises what it raised. Whatever
        ends the wait (the job, an error, cancellation of the caller) stops the thread at
        the next token."""
        if not self.ready:
            raise ModelNotReady(f"model '{self.name}' is {self._state}")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def on_loop(item: GenerationEvent | BaseException | None) -> None:
            if done.done():  # finished, failed or given up on: later events are dropped
                return
            if item is None:
                done.set_result(None)
            elif isinstance(item, BaseException):
                done.set_exception(self._failure(item))
            else:
                deliver(item)

        def emit(item: GenerationEvent | BaseException | None) -> None:
            try:
                loop.call_soon_threadsafe(on_loop, item)
            except RuntimeError:  # loop closed during shutdown: nobody is listening
                cancel.cancel()

        self._jobs.put(Job(prepared, cancel, emit))
        try:
            await done
        finally:
            cancel.cancel()

    def _failure(self, exc: BaseException) -> BaseException:
        if isinstance(exc, GenaiopsError):
            return exc
        failure = RuntimeError(f"model '{self.name}' failed: {exc}")
        failure.__cause__ = exc
        return failure

    async def generate(
        self, prepared: PreparedRequest, cancel: CancelToken
    ) -> AsyncIterator[GenerationEvent]:
        """The ``Engine`` protocol's iterator, over ``relay``."""
        events: asyncio.Queue[GenerationEvent | None] = asyncio.Queue()
        job = asyncio.ensure_future(self.relay(prepared, cancel, events.put_nowait))
        job.add_done_callback(lambda _: events.put_nowait(None))
        try:
            while (item := await events.get()) is not None:
                yield item
            await job  # the job's error, if it failed
        finally:
            # Whether we finished, failed or were closed early, the thread stops at the
            # next token.
            cancel.cancel()
            if not job.done():
                job.cancel()
            elif not job.cancelled():
                job.exception()  # retrieved: a consumer that left early does not want it
