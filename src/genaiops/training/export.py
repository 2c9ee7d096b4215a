"""Export a PEFT LoRA adapter as a GGUF LoRA adapter that llama.cpp loads with ``lora_path``,
and check an adapter file against its base before anything serves it.

The GGUF adapter format, as llama.cpp reads it: ``general.type = "adapter"``,
``adapter.type = "lora"``, ``adapter.lora.alpha``, the base's ``general.architecture``, and
two tensors per adapted weight named after the base tensor (``blk.3.attn_q.weight.lora_a``
and ``.lora_b``), shaped like PEFT's ``lora_A`` (rank x in) and ``lora_B`` (out x rank).
Names come from the ``gguf`` package's tensor-name map for the architecture.

One conversion detail matters: llama.cpp's converter reorders the rows of the Llama query
and key projections (grouping the two halves of each rotary pair), and transformers undoes
that when it loads the GGUF. The adapter was learnt in transformers' order, so the rows of
``lora_B`` for ``q_proj`` and ``k_proj`` are reordered the same way here; ``lora_A`` acts
on the input side and is unchanged. Gemma 3 needs no reordering.

Tensors are written as float32 (a rank-16 adapter on a 270M model is a few MB).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genaiops.errors import InvalidRequest

_ARCHS = {"llama": "LLAMA", "gemma3": "GEMMA3"}


class AdapterError(InvalidRequest):
    def __init__(self, message: str):
        super().__init__(message, param="adapter", code="invalid_adapter")


@dataclass(frozen=True)
class AdapterInfo:
    architecture: str
    alpha: float
    rank: int
    tensors: int  # adapted weights (pairs of tensors)
    size_bytes: int


def rotary_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder the output rows of a query/key projection the way llama.cpp stores them."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _pairs(state: Mapping[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"model.layers.0.self_attn.q_proj": (A, B)} from a PEFT state dict."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key, value in state.items():
        if ".lora_A." not in key:
            continue
        module = key.split(".lora_A.")[0].removeprefix("base_model.model.")
        b = state[key.replace(".lora_A.", ".lora_B.")]
        out[module] = (
            value.detach().float().cpu().numpy(),
            b.detach().float().cpu().numpy(),
        )
    return out


def export(
    state: Mapping[str, Any],
    output: Path,
    architecture: str,
    alpha: float,
    n_layers: int,
    n_head: int,
    n_kv_head: int,
) -> AdapterInfo:
    """Write ``state`` (a PEFT LoRA state dict) to ``output`` as a GGUF LoRA adapter."""
    import gguf

    if architecture not in _ARCHS:
        raise AdapterError(f"no GGUF adapter export for {architecture!r} models")
    arch = getattr(gguf.MODEL_ARCH, _ARCHS[architecture])
    names = gguf.get_tensor_name_map(arch, n_layers)
    pairs = _pairs(state)
    if not pairs:
        raise AdapterError("the adapter holds no LoRA weights")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[arch])
    try:
        writer.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
        rank = 0
        for module, (a, b) in sorted(pairs.items()):
            name = names.get_name(module + ".weight", try_suffixes=(".weight",))
            if name is None:
                raise AdapterError(f"no GGUF tensor for {module}")
            if architecture == "llama" and module.endswith("q_proj"):
                b = rotary_permute(b, n_head)
            elif architecture == "llama" and module.endswith("k_proj"):
                b = rotary_permute(b, n_kv_head)
            rank = a.shape[0]
            writer.add_tensor(name + ".lora_a", np.ascontiguousarray(a, dtype=np.float32))
            writer.add_tensor(name + ".lora_b", np.ascontiguousarray(b, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        tmp.replace(output)
    finally:
        # A failed write (a full disk) closes its file and leaves no half-written adapter.
        writer.close()  # does nothing when already closed
        tmp.unlink(missing_ok=True)
    return AdapterInfo(architecture, float(alpha), rank, len(pairs), output.stat().st_size)


def _lora_tensors(reader: Any) -> dict[str, tuple[int, ...]]:
    """The adapter's tensors and their shapes (ggml order). llama.cpp applies what it is
    given: a stray tensor, an integer type or a tensor that is no matrix crashes the
    serving process at the first request, so each is refused here."""
    import gguf

    floats = {gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16,
              gguf.GGMLQuantizationType.BF16}  # fmt: skip
    tensors: dict[str, tuple[int, ...]] = {}
    for t in reader.tensors:
        if not t.name.endswith((".lora_a", ".lora_b")):
            raise AdapterError(f"adapter tensor {t.name} is not a LoRA tensor (.lora_a, .lora_b)")
        if t.tensor_type not in floats:
            raise AdapterError(
                f"adapter tensor {t.name} is stored as {t.tensor_type.name}; "
                "LoRA tensors are F32, F16 or BF16"
            )
        tensors[t.name] = tuple(int(x) for x in t.shape)
        if len(tensors[t.name]) != 2:
            raise AdapterError(f"adapter tensor {t.name} is not a matrix {tensors[t.name]}")
        if t.tensor_type != gguf.GGMLQuantizationType.BF16 and not np.isfinite(t.data).all():
            raise AdapterError(f"adapter tensor {t.name} holds NaN or infinite values")
    return tensors


def check(adapter: Path, base_gguf: Path) -> AdapterInfo:
    """Refuse an adapter that is not a readable GGUF LoRA adapter for ``base_gguf``: wrong
    file type, another architecture, or tensors whose shapes do not fit the base's."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(adapter))
    except Exception as exc:
        raise AdapterError(f"{adapter.name} is not a readable GGUF file ({exc})") from exc

    def field(r: Any, key: str) -> Any:
        f = r.fields.get(key)
        return None if f is None else f.contents()

    if field(reader, "general.type") != "adapter" or field(reader, "adapter.type") != "lora":
        raise AdapterError(f"{adapter.name} is not a GGUF LoRA adapter")
    base = gguf.GGUFReader(str(base_gguf))
    arch, base_arch = field(reader, "general.architecture"), field(base, "general.architecture")
    if arch != base_arch:
        raise AdapterError(f"adapter is for {arch} models, the base is {base_arch}")
    shapes = {t.name: tuple(int(x) for x in t.shape) for t in base.tensors}  # ggml order
    tensors = _lora_tensors(reader)
    targets = {n.removesuffix(".lora_a") for n in tensors if n.endswith(".lora_a")}
    unpaired = targets ^ {n.removesuffix(".lora_b") for n in tensors if n.endswith(".lora_b")}
    if unpaired:
        raise AdapterError(f"adapter tensor {min(unpaired)} lacks its lora_a or lora_b half")
    rank = 0
    for target in sorted(targets):
        a_shape, b_shape = tensors[target + ".lora_a"], tensors[target + ".lora_b"]
        if target not in shapes:
            raise AdapterError(f"adapter tensor {target} has no counterpart in the base")
        if len(shapes[target]) != 2:
            raise AdapterError(f"adapter tensor {target} adapts a base tensor that is no matrix")
        # ggml order: a is (in, rank), b is (rank, out), the base weight (in, out).
        n_in, n_out = shapes[target]
        if a_shape[0] != n_in or b_shape[1] != n_out or a_shape[1] != b_shape[0]:
            raise AdapterError(
                f"adapter tensor {target} does not fit the base ({a_shape}, {b_shape} "
                f"for a {shapes[target]} weight)"
            )
        rank = a_shape[1]
    pairs = len(targets)
    if pairs == 0:
        raise AdapterError(f"{adapter.name} holds no LoRA tensors")
    try:
        alpha = float(field(reader, "adapter.lora.alpha") or 0.0)
    except (TypeError, ValueError):
        alpha = math.nan
    if not math.isfinite(alpha) or alpha < 0:
        raise AdapterError(f"{adapter.name} has an invalid adapter.lora.alpha")
    return AdapterInfo(str(arch), alpha, rank, pairs, adapter.stat().st_size)
