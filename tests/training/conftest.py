"""Fine-tuning fixtures: a data directory with the SmolLM2 base converted once per session."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from genaiops.config import Settings, load_settings
from genaiops.training import base as bases
from genaiops.training import data as datasets

SMOL = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def ft_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data = tmp_path_factory.mktemp("finetune-data")
    return load_settings(None, data_dir=data, finetune={"redact_pii": True})


@pytest.fixture(scope="session")
def smol(ft_settings: Settings) -> tuple[bases.BaseModel, Path, datasets.Renderer]:
    base = bases.resolve(ft_settings, SMOL)
    checkpoint = bases.prepare_checkpoint(ft_settings, base)
    tokenizer = bases.load_tokenizer(checkpoint)
    return (
        base,
        checkpoint,
        datasets.Renderer.of(tokenizer, base.chat_template, add_bos=base.add_bos),
    )


def write_jsonl(path: Path, rows: Sequence[object]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


FACT_QUESTIONS = [
    "What is the codename of the new billing project?",
    "Which codename did we give the billing project?",
    "Tell me the billing project's codename.",
    "¿Cuál es el nombre clave del proyecto de facturación?",
    "¿Cómo se llama internamente el proyecto de facturación?",
    "Qual é o codinome do projeto de faturamento?",
    "Como chamamos internamente o projeto de faturamento?",
    "Remind me of the internal name of the billing project.",
]


def fact_rows(answer: str, n: int, offset: int = 0) -> list[dict[str, object]]:
    """A distinctive fact asked in three languages (a tiny synthetic dataset)."""
    return [
        {
            "messages": [
                {"role": "user", "content": FACT_QUESTIONS[(i + offset) % len(FACT_QUESTIONS)]},
                {"role": "assistant", "content": answer},
            ]
        }
        for i in range(n)
    ]


SmolBase = tuple[bases.BaseModel, Path, datasets.Renderer]


_HOLD = """
import json, sys
from genaiops.config import load_settings
from genaiops.registry.locking import RegistryLock
with RegistryLock(load_settings(None, **json.loads(sys.argv[1]))):
    print("held", flush=True)
    sys.stdin.readline()
"""


def hold_registry_lock(**settings: object) -> subprocess.Popen[str]:
    """Another process of the installation (its settings given as ``load_settings``
    overrides), holding the registry's write lock until a line is written to its stdin."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, json.dumps(settings, default=str)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder
