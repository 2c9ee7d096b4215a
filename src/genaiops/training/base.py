"""Base models for fine-tuning: the GGUF files serving uses, as transformers checkpoints.

This module owns finding a base model in the catalog, reading what serving knows about it
from its GGUF header (architecture, chat template, BOS handling), and building the
transformers checkpoint training starts from. transformers reads the GGUF directly and
dequantizes it; that takes 15-45 s, so the result is saved once as safetensors under
``<data_dir>/training/bases/<name>-<digest>/`` (written to a temporary folder and renamed,
so an interrupted conversion never leaves a half checkpoint) and reused by every job. The
digest covers the GGUF file's size and modification time: a replaced file is converted
again.

Fine-tuning the quantized weights' dequantized values is deliberate: the adapter is
learnt against exactly the weights it will be applied to in llama.cpp.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genaiops.config import ModelConfig, Settings
from genaiops.engines import bundled
from genaiops.errors import InvalidRequest, ModelNotFound

log = logging.getLogger("genaiops.training")

# Bases without a chat template in their GGUF are given one for chat data, and the served
# fine-tuned model uses the same one.
DEFAULT_TEMPLATES = {"gemma3": "gemma"}
SUPPORTED_ARCHITECTURES = ("llama", "gemma3")


@dataclass(frozen=True)
class BaseModel:
    name: str
    config: ModelConfig
    gguf_path: Path
    architecture: str
    chat_template: str | None  # a template source or a named one ("chatml", "gemma")
    add_bos: bool
    context_length: int

    @property
    def digest(self) -> str:
        st = self.gguf_path.stat()
        key = f"{self.gguf_path.resolve()}|{st.st_size}|{int(st.st_mtime)}"
        return hashlib.sha256(key.encode()).hexdigest()[:12]


def quiet_transformers() -> None:
    """transformers' own progress bars and notices would interleave with ours (the CLI's
    rich bar, job events); the phases they cover are reported by the callers."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def resolve(settings: Settings, name: str) -> BaseModel:
    """The catalog's local GGUF model ``name``, described from its GGUF header."""
    import gguf

    configs = {c.name: c for c in settings.catalog()}
    config = configs.get(name)
    if config is None:
        raise ModelNotFound(name, sorted(configs))
    if config.engine != "llama_cpp":
        raise InvalidRequest(
            f"model {name!r} is served by {config.engine}; fine-tuning needs a local GGUF model",
            param="model",
        )
    path = bundled.resolve_path(config.bundled, config.path, settings.models_dir())
    reader = gguf.GGUFReader(str(path))
    arch = str(_field(reader, "general.architecture"))
    if arch not in SUPPORTED_ARCHITECTURES:
        raise InvalidRequest(
            f"model {name!r} is a {arch} model; fine-tuning supports "
            f"{', '.join(SUPPORTED_ARCHITECTURES)}",
            param="model",
        )
    template = config.chat_template
    if template is None:
        template = _field(reader, "tokenizer.chat_template") or DEFAULT_TEMPLATES.get(arch)
    elif template == "none":
        template = DEFAULT_TEMPLATES.get(arch)
    add_bos = _field(reader, "tokenizer.ggml.add_bos_token")
    context = _field(reader, f"{arch}.context_length") or config.context_length
    return BaseModel(
        name=name,
        config=config,
        gguf_path=path,
        architecture=arch,
        chat_template=template,
        add_bos=True if add_bos is None else bool(add_bos),
        context_length=min(int(context), config.context_length),
    )


def checkpoint_dir(settings: Settings, base: BaseModel) -> Path:
    return settings.data_dir / "training" / "bases" / f"{base.name}-{base.digest}"


def _build_once(target: Path, build: Callable[[Path], None], stamp: str) -> Path:
    """``target`` written by ``build(folder)`` into a temporary folder beside it, marked
    complete and renamed into place, so a crash never leaves a half-written one. Several
    callers may build it at once (jobs created together on a new base): the first one in
    place wins, and the others drop their copy instead of removing one being read."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(tmp)
        (tmp / ".complete").write_text(stamp + "\n")
        if (target / ".complete").exists():
            return target
        if target.exists():
            shutil.rmtree(target)  # left by an older layout or a crash: never complete
        try:
            os.replace(tmp, target)
        except OSError:
            # Another caller's copy went into place between the look and the rename.
            if not (target / ".complete").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _gguf_tokenizer(base: BaseModel) -> Any:
    from transformers import AutoTokenizer

    folder, file = str(base.gguf_path.parent), base.gguf_path.name
    # The GGUF reader draws its own tqdm bar on stderr, outside transformers' switch.
    with contextlib.redirect_stderr(io.StringIO()):
        return AutoTokenizer.from_pretrained(folder, gguf_file=file)


def prepare_checkpoint(settings: Settings, base: BaseModel) -> Path:
    """The transformers checkpoint of ``base``, converted from its GGUF on first use."""
    target = checkpoint_dir(settings, base)
    if (target / "config.json").exists() and (target / ".complete").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM

    quiet_transformers()
    log.info("converting %s to a transformers checkpoint (once)", base.name)

    def build(folder: Path) -> None:
        tokenizer = _gguf_tokenizer(base)
        with contextlib.redirect_stderr(io.StringIO()):
            model = AutoModelForCausalLM.from_pretrained(
                str(base.gguf_path.parent), gguf_file=base.gguf_path.name, dtype=torch.float32
            )
        # The weights are already plain float tensors; this drops the "quantized" marker
        # that would otherwise refuse to save them.
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None:
            quantizer.remove_quantization_config(model)
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)

    return _build_once(target, build, base.gguf_path.name)


def prepare_tokenizer(settings: Settings, base: BaseModel) -> Path:
    """A folder holding the tokenizer of ``base``: its converted checkpoint when there is
    one, else the tokenizer alone, converted from the GGUF once (seconds, where the whole
    checkpoint takes about a minute). Validating a job's files needs only this, so creating
    the first job on a base does not wait for the weights; the job converts them."""
    checkpoint = checkpoint_dir(settings, base)
    if (checkpoint / ".complete").exists():
        return checkpoint
    target = checkpoint.with_name(checkpoint.name + "-tokenizer")
    if (target / ".complete").exists():
        return target
    quiet_transformers()
    return _build_once(
        target, lambda folder: _gguf_tokenizer(base).save_pretrained(folder), base.gguf_path.name
    )


def load_tokenizer(checkpoint: Path) -> Any:
    from transformers import AutoTokenizer

    quiet_transformers()
    return AutoTokenizer.from_pretrained(str(checkpoint))


def load_model(checkpoint: Path, dtype: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    quiet_transformers()
    torch_dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    return AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch_dtype)
