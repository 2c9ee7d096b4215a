"""The transformers engine on a merged fine-tuned checkpoint: it generates exactly what
transformers' own greedy generation does, and honours stops, limits and cancellation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from genaiops.config import ModelConfig, load_settings
from genaiops.engines.base import (
    CancelToken,
    ChatMessage,
    Finished,
    GenerationRequest,
    ResponseFormat,
    SamplingParams,
    TextDelta,
)
from genaiops.engines.transformers_engine import TransformersEngine
from genaiops.errors import ContextLengthExceeded, InvalidRequest
from genaiops.training import base as bases
from genaiops.training import lora
from tests.training.conftest import SmolBase


@pytest.fixture(scope="module")
def merged(smol: SmolBase, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2 with a (random, non-zero) LoRA adapter merged in, saved as a checkpoint."""
    import torch

    base, checkpoint, renderer = smol
    torch.manual_seed(0)
    model = lora._lora_model(bases.load_model(checkpoint, "fp32"), lora.TrainConfig(r=4, alpha=8))
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)
    folder = tmp_path_factory.mktemp("merged")
    model.merge_and_unload().save_pretrained(folder)
    renderer.tokenizer.save_pretrained(folder)
    return folder


async def _collect(engine: TransformersEngine, request: GenerationRequest,
                   cancel: CancelToken | None = None) -> tuple[str, Finished]:  # fmt: skip
    prepared = engine.prepare(request)
    text, finished = "", None
    async for event in engine.generate(prepared, cancel or CancelToken()):
        if isinstance(event, TextDelta):
            text += event.text
        elif isinstance(event, Finished):
            finished = event
    assert finished is not None
    return text, finished


def test_matches_transformers_greedy_generation(merged: Path, smol: SmolBase) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    base = smol[0]
    config = ModelConfig(name="bot:1", engine="transformers", path=merged, context_length=512,
                         chat_template=base.chat_template)  # fmt: skip
    engine = TransformersEngine(config, load_settings(None))
    prompt = "The three most spoken languages in Latin America are"

    async def scenario() -> None:
        await engine.start()
        try:
            params = SamplingParams(max_tokens=20, temperature=0)
            text, done = await _collect(
                engine, GenerationRequest("r1", "bot:1", params, prompt=prompt)
            )
            reference = AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.float32)
            ids = engine._tokenizer(prompt, return_tensors="pt").input_ids
            out = reference.generate(ids, max_new_tokens=20, do_sample=False)
            expected = engine._tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
            assert text == expected and done.completion_tokens == 20 and done.reason == "length"
            assert done.prompt_tokens == ids.shape[1]

            first_word = expected.split()[1]
            stopped, why = await _collect(engine, GenerationRequest(
                "r2", "bot:1", SamplingParams(max_tokens=20, temperature=0, stop=[first_word]),
                prompt=prompt))  # fmt: skip
            assert why.reason == "stop" and first_word not in stopped

            chat = GenerationRequest("r3", "bot:1", SamplingParams(max_tokens=8, temperature=0.8,
                                     seed=3), messages=[ChatMessage("user", "Hola")])  # fmt: skip
            a, _ = await _collect(engine, chat)
            b, _ = await _collect(engine, chat)
            assert a == b and a  # seeded sampling is reproducible

            # Cancelled after two pieces of text: the decode loop stops at the next token.
            cancel, seen = CancelToken(), 0
            long = SamplingParams(max_tokens=200, temperature=0)
            prepared = engine.prepare(GenerationRequest("r4", "bot:1", long, prompt=prompt))
            async for event in engine.generate(prepared, cancel):
                seen += isinstance(event, TextDelta)
                if seen == 2:
                    cancel.cancel()
            assert seen <= 3
            with pytest.raises(ContextLengthExceeded):
                engine.prepare(GenerationRequest("r5", "bot:1", SamplingParams(max_tokens=10),
                                                 prompt="palabra " * 600))  # fmt: skip
            # Log probabilities: the reference model's own log-softmax at each step, the
            # sampled token first among the alternatives, bytes that spell the text.
            scored = SamplingParams(max_tokens=6, temperature=0, logprobs=3)
            request = GenerationRequest("r7", "bot:1", scored, prompt=prompt)
            entries, text = [], ""
            async for event in engine.generate(engine.prepare(request), CancelToken()):
                if isinstance(event, TextDelta):
                    entries += event.logprobs
                    text += event.text
            assert len(entries) == 6 and b"".join(e.raw for e in entries).decode() == text
            full = torch.tensor([ids[0].tolist() + out[0, ids.shape[1] :].tolist()[:6]])
            with torch.no_grad():
                logits = reference(full).logits[0, ids.shape[1] - 1 : ids.shape[1] + 5]
            expected_lp = torch.log_softmax(logits.float(), dim=-1)
            for i, entry in enumerate(entries):
                token = int(full[0, ids.shape[1] + i])
                assert abs(entry.logprob - float(expected_lp[i, token])) < 1e-4
                assert entry.top[0][2] == entry.raw and len(entry.top) == 3

            # logit_bias: the first greedy token banned, another one comes first.
            first = int(out[0, ids.shape[1]])
            banned = SamplingParams(max_tokens=3, temperature=0, logit_bias={first: -100})
            other, _ = await _collect(
                engine, GenerationRequest("r8", "bot:1", banned, prompt=prompt)
            )
            assert not other.startswith(engine.token_text([first]))
            assert engine.token_ids(GenerationRequest("r9", "bot:1", params, prompt=prompt)) == (
                ids[0].tolist()
            )
            with pytest.raises(InvalidRequest, match="does not have"):
                engine.prepare(GenerationRequest("r10", "bot:1", SamplingParams(
                    logit_bias={engine.vocab_size(): 5.0}), prompt="x"))  # fmt: skip
            structured = SamplingParams(
                max_tokens=5, response_format=ResponseFormat(type="json_object")
            )
            with pytest.raises(InvalidRequest, match="response_format"):
                engine.prepare(GenerationRequest("r6", "bot:1", structured, prompt="x"))
        finally:
            await engine.close()

    asyncio.run(scenario())
