"""The official client on the session's gateway, shared by the API test modules."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.conftest import Server


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[openai.OpenAI]:
    """Closed when its module ends (a pooled socket left open fails a later test)."""
    with openai.OpenAI(
        base_url=server.base_url, api_key=server.key, max_retries=0, timeout=180
    ) as client:
        yield client
