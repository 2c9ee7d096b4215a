"""A streamed answer's first text: the model thread waits, briefly, for the response to
have sent it before decoding on (``CancelToken.shown``), so the first token does not
queue for a core behind the second one's decode; nothing else waits for it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from genaiops.config import ModelConfig, load_settings
from genaiops.engines.base import (
    CancelToken,
    Finished,
    GenerationEvent,
    GenerationRequest,
    SamplingParams,
    TextDelta,
    create_engine,
)
from genaiops.server.streaming import SSEResponse

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RecordingToken(CancelToken):
    """A cancel token that logs when the engine starts and stops waiting to be shown its
    first text, in one log with the events as the event loop receives them."""

    def __init__(self, log: list[Any]) -> None:
        super().__init__()
        self.log = log
        self.timeouts: list[float] = []

    def wait_shown(self, timeout: float) -> bool:
        self.timeouts.append(timeout)
        self.log.append("wait")
        shown = super().wait_shown(timeout)
        self.log.append("shown" if shown else "waited")
        return shown


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Any:
    settings = load_settings(data_dir=tmp_path_factory.mktemp("data"))
    config = ModelConfig(name="smol", bundled="smollm2", context_length=512)
    engine = create_engine(config, settings)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(engine.start())
    yield engine, loop
    loop.run_until_complete(engine.close())
    loop.close()


def _generate(engine: Any, stream: bool, show: bool) -> tuple[list[Any], RecordingToken]:
    """Generate six tokens; with ``show`` the first text is reported shown as soon as the
    event loop receives it, as a streamed response does once it has sent it."""
    llm, loop = engine
    log: list[Any] = []
    token = RecordingToken(log)

    def deliver(event: GenerationEvent) -> None:
        log.append(event)
        if show and isinstance(event, TextDelta):
            token.shown()

    request = GenerationRequest(
        "r",
        "smol",
        SamplingParams(max_tokens=6, temperature=0.0, ignore_eos=True),
        prompt="The capital of France is",
        stream=stream,
    )
    loop.run_until_complete(llm.relay(llm.prepare(request), token, deliver))
    return log, token


def test_a_stream_decodes_on_once_its_first_text_is_shown(engine: Any) -> None:
    log, token = _generate(engine, stream=True, show=True)
    texts = [i for i, item in enumerate(log) if isinstance(item, TextDelta)]
    # The engine waited once, and went on when told the first text was shown: only then
    # did the second text come.
    assert log.count("wait") == 1 and "waited" not in log
    assert texts[0] < log.index("shown") < texts[1]
    assert 0 < token.timeouts[0] <= 0.05
    assert isinstance(log[-1], Finished) and log[-1].completion_tokens == 6


def test_a_stream_never_shown_waits_only_a_moment(engine: Any) -> None:
    log, token = _generate(engine, stream=True, show=False)
    # Nobody reports the first text (a caller that is not an HTTP response): the engine
    # waits for its timeout, once, and the answer is whole.
    assert log.count("wait") == 1 and log.count("waited") == 1
    texts = [i for i, item in enumerate(log) if isinstance(item, TextDelta)]
    assert len(texts) >= 2 and log.index("waited") < texts[1]
    assert isinstance(log[-1], Finished) and log[-1].completion_tokens == 6


def test_an_answer_that_is_not_streamed_never_waits(engine: Any) -> None:
    log, token = _generate(engine, stream=False, show=False)
    assert token.timeouts == [] and "wait" not in log
    assert isinstance(log[-1], Finished) and log[-1].completion_tokens == 6


def test_cancelling_releases_an_engine_waiting_to_be_shown() -> None:
    token = CancelToken()
    released = threading.Event()

    def wait() -> None:
        token.wait_shown(30)
        released.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    token.cancel()
    waiter.join(10)
    assert released.is_set() and token.cancelled


async def _body(*chunks: bytes) -> Any:
    for chunk in chunks:
        yield chunk


async def test_the_response_reports_its_first_bytes_sent_once() -> None:
    sent: list[dict[str, Any]] = []
    shown_after: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(30)
        return {"type": "http.disconnect"}

    response = SSEResponse(
        _body(b"data: one\n\n", b"data: two\n\n"), lambda: shown_after.append(len(sent))
    )
    await response({"type": "http", "asgi": {"spec_version": "2.4"}}, receive, send)
    # Called after the status line and the first chunk went out, and only then.
    assert shown_after == [2]
    assert sent[1]["body"] == b"data: one\n\n"
    assert [m.get("body") for m in sent[2:]] == [b"data: two\n\n", b""]


async def test_a_response_the_client_left_still_releases_the_engine() -> None:
    shown: list[bool] = []

    async def send(message: dict[str, Any]) -> None:
        raise OSError("connection reset")

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    response = SSEResponse(_body(b"data: one\n\n"), lambda: shown.append(True))
    with pytest.raises(OSError):
        await response({"type": "http", "asgi": {"spec_version": "2.4"}}, receive, send)
    assert shown == [True]
