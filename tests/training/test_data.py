"""Training datasets with the real SmolLM2 tokenizer: what the loss sees, validation with
line numbers, redaction and the content hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from genaiops.config import Settings, load_settings
from genaiops.training import base as bases
from genaiops.training import data as datasets
from genaiops.training.data import IGNORE, DatasetError
from genaiops.training.runner import redactor
from tests.training.conftest import SmolBase, fact_rows, write_jsonl


def _learned(renderer: datasets.Renderer, example: datasets.Example) -> str:
    text: str = renderer.tokenizer.decode([t for t in example.labels if t != IGNORE])
    return text


def test_chat_loss_is_on_assistant_turns_only(smol: SmolBase, tmp_path: Path) -> None:
    _, _, renderer = smol
    rows = [
        {
            "messages": [
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": "Hola"},
                {"role": "assistant", "content": "¡Hola! ¿En qué te ayudo?"},
                {"role": "user", "content": "Nada, gracias"},
                {"role": "assistant", "content": "De nada."},
            ]
        }
    ]
    ds = datasets.load(write_jsonl(tmp_path / "chat.jsonl", rows), renderer, 256)
    assert ds.format == "chat" and len(ds.examples) == 1
    example = ds.examples[0]
    learned = _learned(renderer, example)
    assert learned == "¡Hola! ¿En qué te ayudo?<|im_end|>\nDe nada.<|im_end|>\n"
    full = renderer.tokenizer.decode(example.input_ids)
    assert "Answer briefly." in full and "Nada, gracias" in full
    assert "Nada, gracias" not in learned and len(example.labels) == len(example.input_ids)


def test_instruction_and_text_formats(smol: SmolBase, tmp_path: Path) -> None:
    _, _, renderer = smol
    ins = write_jsonl(tmp_path / "ins.jsonl", [{"prompt": "Q: 2+2?\nA:", "completion": " 4"}])
    ds = datasets.load(ins, renderer, 64)
    assert ds.format == "instruction"
    assert _learned(renderer, ds.examples[0]) == " 4" + renderer.tokenizer.eos_token
    long_text = tmp_path / "corpus.txt"
    long_text.write_text("El contrato de trabajo se rige por la ley. " * 80)
    ds = datasets.load(long_text, renderer, 64)
    assert ds.format == "text" and len(ds.examples) > 5
    assert all(len(e.input_ids) <= 64 and e.labels == e.input_ids for e in ds.examples)


def test_every_problem_is_reported_with_its_line(smol: SmolBase, tmp_path: Path) -> None:
    _, _, renderer = smol
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"prompt": "a", "completion": "b"}\n'
        "{not json\n"
        '{"prompt": "only a prompt"}\n'
        '{"prompt": "x", "completion": "   "}\n'
        "\n"
        '{"prompt": "' + "palabra " * 400 + '", "completion": "fin"}\n'
    )
    with pytest.raises(DatasetError) as err:
        datasets.load(path, renderer, 128)
    lines = {n for n, _ in err.value.problems}
    assert lines == {2, 3, 4, 6}
    message = err.value.message
    assert "line 2: invalid JSON" in message and "line 3: missing 'completion'" in message
    assert "line 4: empty completion" in message and "longer than max_length 128" in message
    assert err.value.code == "invalid_training_file"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "no records"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}\n', "no assistant message"),
        (b'{"messages": [{"role": "robot", "content": "hi"}]}\n', "role must be one of"),
        (b'{"text": ""}\n', "empty text"),
        (b"\xff\xfe\x00garbage", "not valid UTF-8"),
        (b"[1, 2, 3]\n", "no records"),
    ],
)
def test_malformed_files(smol: SmolBase, tmp_path: Path, content: bytes, expected: str) -> None:
    _, _, renderer = smol
    path = tmp_path / "f.jsonl"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=expected):
        datasets.load(path, renderer, 128)
    with pytest.raises(DatasetError, match="no such file"):
        datasets.load(tmp_path / "missing.jsonl", renderer, 128)


def test_pii_is_redacted_before_training_and_the_hash_is_of_the_file(
    smol: SmolBase, ft_settings: Settings, tmp_path: Path
) -> None:
    _, _, renderer = smol
    rows = [{"prompt": "Contacto:", "completion": " ana.souza@empresa.com.br, CPF 529.982.247-25"}]
    path = write_jsonl(tmp_path / "pii.jsonl", rows)
    ds = datasets.load(path, renderer, 128, redactor(ft_settings))
    learned = _learned(renderer, ds.examples[0])
    assert "ana.souza" not in learned and "529.982" not in learned
    assert "<EMAIL_1>" in learned and "<CPF_1>" in learned and ds.redacted == 2
    plain = datasets.load(path, renderer, 128)
    assert plain.sha256 == ds.sha256 == datasets.file_sha256(path)
    assert "ana.souza" in _learned(renderer, plain.examples[0])


def test_chat_data_needs_a_template(smol: SmolBase, tmp_path: Path) -> None:
    _, _, renderer = smol
    no_template = datasets.Renderer(renderer.tokenizer, None)
    path = write_jsonl(tmp_path / "chat.jsonl", fact_rows("Zafiro-77.", 2))
    with pytest.raises(DatasetError, match="no chat template"):
        datasets.load(path, no_template, 128)


def test_validation_needs_only_the_tokenizer(smol: SmolBase, tmp_path: Path) -> None:
    """Files are validated with the tokenizer alone, converted without the weights, and it
    reads text exactly as the converted checkpoint's tokenizer does."""
    base, checkpoint, renderer = smol
    fresh = load_settings(None, data_dir=tmp_path / "data")
    folder = bases.prepare_tokenizer(fresh, base)
    assert folder.name.endswith("-tokenizer") and (folder / ".complete").exists()
    assert not (bases.checkpoint_dir(fresh, base) / "config.json").exists()
    alone = bases.load_tokenizer(folder)
    text = "¿Cuál es el nombre clave del proyecto? Qual é o codinome? <|im_start|>user"
    assert alone(text)["input_ids"] == renderer.tokenizer(text)["input_ids"]
    # Once the checkpoint exists, its own tokenizer is used.
    converted = load_settings(None, data_dir=checkpoint.parents[2])
    assert bases.prepare_tokenizer(converted, base) == checkpoint
