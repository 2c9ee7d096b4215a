"""Training datasets with the real SmolLM2 tokenizer: what the loss sees, validation with
line numbers, redaction and the content hash."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from genaiops.config import Settings, load_settings
from genaiops.training import base as bases
from genaiops.training import data as datasets
from genaiops.training import runner
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
        (
            b'{"messages": [{"role": "assistant", "content": "Hello"}, '
            b'{"role": "user", "content": "hi"}]}\n',
            "must start with a user message",
        ),
        (b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", "nested too deeply"),
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


def test_a_conversion_finished_second_leaves_the_first_in_place(tmp_path: Path) -> None:
    """Jobs created together on a new base each convert its tokenizer: the first copy in
    place stays (another caller may be reading it), the later ones are dropped."""
    target = tmp_path / "bases" / "smol-tokenizer"

    def build(label: str) -> Any:
        return lambda folder: (folder / "built-by").write_text(label)

    # B began before A's copy was in place, and finishes after.
    assert bases._build_once(target, build("a"), "stamp") == target
    assert bases._build_once(target, build("b"), "stamp") == target
    assert (target / "built-by").read_text() == "a"
    assert sorted(p.name for p in target.parent.iterdir()) == ["smol-tokenizer"]
    # A folder never completed (a crash in an older layout) is replaced.
    (target / ".complete").unlink()
    assert (bases._build_once(target, build("c"), "stamp") / "built-by").read_text() == "c"


def _chat(*turns: tuple[str, str]) -> dict[str, object]:
    return {"messages": [{"role": role, "content": content} for role, content in turns]}


def test_redaction_numbers_placeholders_per_record(smol: SmolBase, tmp_path: Path) -> None:
    _, _, renderer = smol
    settings = load_settings(None, data_dir=tmp_path / "data")
    rows = [
        _chat(("user", "Write to ana@empresa.com"), ("assistant", "Done: ana@empresa.com"),
              ("user", "And to bruno@empresa.com?"), ("assistant", "Written to bruno@empresa.com")),
        _chat(("user", "Mail carla@empresa.com"), ("assistant", "Mailed carla@empresa.com")),
    ]  # fmt: skip
    ds = datasets.load(write_jsonl(tmp_path / "chat.jsonl", rows), renderer, 256,
                       redactor(settings))  # fmt: skip
    first, second = (renderer.tokenizer.decode(e.input_ids) for e in ds.examples)
    assert "empresa.com" not in first + second and ds.redacted == 6
    # One numbering per conversation: two addresses are two placeholders, the same one
    # keeps its placeholder; the next conversation starts again.
    assert first.count("<EMAIL_1>") == 2 and first.count("<EMAIL_2>") == 2
    assert second.count("<EMAIL_1>") == 2 and "<EMAIL_2>" not in second


def test_redaction_follows_the_pii_guard_settings(smol: SmolBase, tmp_path: Path) -> None:
    _, _, renderer = smol
    rows = [{"prompt": "Contacto:", "completion": " ana.souza@empresa.com.br, CPF 529.982.247-25"}]
    path = write_jsonl(tmp_path / "pii.jsonl", rows)

    def learned(**guardrails: object) -> str:
        settings = load_settings(None, data_dir=tmp_path / "data", guardrails=guardrails)
        ds = datasets.load(path, renderer, 128, redactor(settings))
        return _learned(renderer, ds.examples[0])

    only_cpf = learned(input={"pii": {"action": "redact", "options": {"entities": ["CPF"]}}})
    assert "<CPF_1>" in only_cpf and "ana.souza@empresa.com.br" in only_cpf
    # The pii guard off for inputs: training data is not redacted either.
    off = learned(input={"pii": {"enabled": False}})
    assert "ana.souza@empresa.com.br" in off and "529.982.247-25" in off
    # finetune.redact_pii = false: trained as written, whatever the guard policy says.
    settings = load_settings(None, data_dir=tmp_path / "data", finetune={"redact_pii": False})
    assert redactor(settings) is None
    ds = datasets.load(path, renderer, 128, redactor(settings))
    assert ds.redacted == 0 and "529.982.247-25" in _learned(renderer, ds.examples[0])


def test_a_jobs_redaction_follows_its_owners_policy(smol: SmolBase, tmp_path: Path) -> None:
    """A job is redacted with the input policy its owner's requests get: the tenant's and
    the creating key's overrides over the configuration."""
    from genaiops.config import GuardPolicy
    from genaiops.guardrails.policies import PolicyStore
    from genaiops.storage.db import Database
    from genaiops.training.jobs import Job

    _, _, renderer = smol
    rows = [{"prompt": "Contacto:", "completion": " ana.souza@empresa.com.br, CPF 529.982.247-25"}]
    path = write_jsonl(tmp_path / "pii.jsonl", rows)
    settings = load_settings(None, data_dir=tmp_path / "data")
    db = Database(settings.database_url())
    store = PolicyStore(db, settings.guardrails)
    only_email = GuardPolicy(action="redact", options={"entities": ["EMAIL"]})
    store.put("tenant:acme", "input", {"pii": only_email}, "test")
    store.put("key:k-off", "input", {"pii": GuardPolicy(enabled=False)}, "test")
    db.close()

    def learned(tenant: str, created_by: str) -> str:
        job = Job(
            "ftjob-x", tenant, "smollm2-135m-instruct", "bot", str(path), None, {}, "queued", 0
        )
        job.created_by = created_by
        ds = datasets.load(path, renderer, 128, redactor(settings, job))
        return _learned(renderer, ds.examples[0])

    acme = learned("acme", "k-acme")
    assert "<EMAIL_1>" in acme and "529.982.247-25" in acme
    other = learned("globex", "k-globex")  # the configuration: every entity
    assert "<EMAIL_1>" in other and "<CPF_1>" in other
    # A key whose policy switches the pii guard off trains on its data as it is.
    assert "ana.souza@empresa.com.br" in learned("acme", "k-off")


def test_chat_templates_get_the_tokenizers_bos_and_eos(
    smol: SmolBase, ft_settings: Settings, tmp_path: Path
) -> None:
    """Training renders templates as the llama.cpp engine serves them: with the real BOS
    and EOS strings, and one BOS token when the template writes it."""
    base, _, _ = smol
    renderer = runner.validation_renderer(ft_settings, base)
    tok = renderer.tokenizer
    eos_style = (
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}"
        "[INST] {{ m['content'] }} [/INST]{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}"
        "{% endfor %}"
    )
    rows = [
        _chat(("user", "Hola"), ("assistant", "Hola."), ("user", "Chau"), ("assistant", "Chau."))
    ]
    for add_bos in (True, False):
        r = replace(renderer, chat_template=eos_style, add_bos=add_bos)
        ds = datasets.load(write_jsonl(tmp_path / "eos.jsonl", rows), r, 256)
        example = ds.examples[0]
        assert _learned(r, example) == f"Hola.{tok.eos_token}Chau.{tok.eos_token}"
        assert example.input_ids[0] == tok.bos_token_id
        assert example.input_ids[1] != tok.bos_token_id
        assert (
            tok.decode(example.input_ids) == f"{tok.bos_token}[INST] Hola [/INST]Hola."
            f"{tok.eos_token}[INST] Chau [/INST]Chau.{tok.eos_token}"
        )
    # A template that does not write the BOS gets one only where the model adds it.
    plain = replace(renderer, chat_template=eos_style.removeprefix("{{ bos_token }}"))
    for add_bos in (True, False):
        ds = datasets.load(tmp_path / "eos.jsonl", replace(plain, add_bos=add_bos), 256)
        assert (ds.examples[0].input_ids[0] == tok.bos_token_id) is add_bos


def test_line_separators_inside_strings_and_a_bom_are_text(smol: SmolBase, tmp_path: Path) -> None:
    _, _, renderer = smol
    rows = [{"prompt": f"Q{n}\u2028?", "completion": f" a\u0085b{n}"} for n in range(3)]
    path = tmp_path / "sep.jsonl"
    path.write_bytes(("\ufeff" + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
                      + "{broken\n").encode())  # fmt: skip
    with pytest.raises(DatasetError) as err:
        datasets.load(path, renderer, 128)
    assert err.value.problems == [(4, err.value.problems[0][1])]  # the one bad line, numbered
    path.write_bytes(path.read_bytes().replace(b"{broken\n", b""))
    assert len(datasets.load(path, renderer, 128).examples) == 3
    with pytest.raises(DatasetError) as err:
        datasets.load(path.with_name("none.jsonl"), renderer, 128, param="validation_file")
    assert err.value.param == "validation_file" and err.value.code == "invalid_validation_file"
