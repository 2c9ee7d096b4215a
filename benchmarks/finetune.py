"""LoRA fine-tuning throughput, GGUF adapter export, and what an adapter costs at serving.

For each bundled base (SmolLM2-135M, Gemma 3 270M):

* training throughput in tokens/s for LoRA (r=16 on the query and value projections, the
  default) at sequence length 256,
  batch 4, in fp32 and in bf16 (frozen base in bfloat16, adapter and loss in float32),
  measured over ``--steps`` optimizer steps after two warm-up steps;
* the time and size of exporting the adapter to a GGUF LoRA adapter;
* generation speed through llama.cpp of the base alone and of the base with the adapter,
  in the same process, alternating runs (greedy, 128 tokens). Target: the adapter costs
  under 10 % of the base's tokens/s. The same is measured for an adapter on all seven
  projections, for comparison.

Usage: python benchmarks/finetune.py [--steps 6] [--gen-runs 3]
Writes benchmarks/results/finetune.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from genaiops.config import load_settings
from genaiops.training import base as bases
from genaiops.training import data as datasets
from genaiops.training import export, lora

RESULTS = Path(__file__).parent / "results" / "finetune.json"
BASES = ("smollm2-135m-instruct", "gemma3-270m")
SEQ = 256
BATCH = 4
TEXT = (
    "El equipo de soporte atiende consultas sobre facturación, envíos y devoluciones. "
    "A equipe de suporte responde dúvidas sobre faturamento, entregas e devoluções. "
    "The support team answers questions about billing, shipping and returns. "
)


def examples(renderer: datasets.Renderer, n: int) -> list[datasets.Example]:
    ids = renderer.tokens(TEXT * 200)
    return [
        datasets.Example(ids[i * SEQ : (i + 1) * SEQ], ids[i * SEQ : (i + 1) * SEQ])
        for i in range(n)
    ]


def train_speed(checkpoint: Path, data: list[datasets.Example], dtype: str, steps: int,
                work: Path, pad: int) -> tuple[dict[str, Any], Any]:  # fmt: skip
    times: list[float] = []

    def on_step(p: lora.Progress) -> None:
        times.append(time.perf_counter())

    cfg = lora.TrainConfig(epochs=1, batch_size=BATCH, max_length=SEQ, dtype=dtype,
                           checkpoint_every=0, seed=0)  # fmt: skip
    model, _ = lora.train(lambda: bases.load_model(checkpoint, dtype), data, data[:BATCH], cfg,
                          work, pad, lora.Hooks(on_step=on_step))  # fmt: skip
    measured = [b - a for a, b in zip(times[1:], times[2:], strict=False)]  # after 2 warm-ups
    per_step = statistics.median(measured)
    return {
        "dtype": dtype,
        "steps_measured": len(measured),
        "seconds_per_step": round(per_step, 3),
        "tokens_per_s": round(SEQ * BATCH / per_step, 1),
    }, model


def generation_speed(base_gguf: Path, adapter: Path, runs: int) -> dict[str, Any]:
    from llama_cpp import Llama

    prompt = "Escribe un resumen de la política de devoluciones de la tienda:"
    results: dict[str, list[float]] = {"base": [], "base+adapter": []}
    models = {
        "base": Llama(str(base_gguf), n_ctx=512, verbose=False, n_threads=os.cpu_count()),
        "base+adapter": Llama(
            str(base_gguf),
            n_ctx=512,
            verbose=False,
            n_threads=os.cpu_count(),
            lora_path=str(adapter),
        ),  # fmt: skip
    }
    for llm in models.values():
        llm(prompt, max_tokens=16, temperature=0)  # warm-up
    for _ in range(runs):
        for name, llm in models.items():  # alternate, so drift hits both
            llm.reset()
            t0 = time.perf_counter()
            out = llm(prompt, max_tokens=128, temperature=0)
            elapsed = time.perf_counter() - t0
            results[name].append(out["usage"]["completion_tokens"] / elapsed)
    for llm in models.values():
        llm.close()
    base = statistics.median(results["base"])
    with_adapter = statistics.median(results["base+adapter"])
    return {
        "base_tokens_per_s": round(base, 1),
        "adapter_tokens_per_s": round(with_adapter, 1),
        "adapter_cost": round(1 - with_adapter / base, 4),
        "target_under_10pct": (1 - with_adapter / base) < 0.10,
        "runs": runs,
    }


def all_projections(checkpoint: Path, base: bases.BaseModel, tmp: Path) -> Path:
    """An (untrained) adapter on all seven projections: its cost does not depend on values."""
    from peft import get_peft_model_state_dict

    cfg = lora.TrainConfig(target_modules=lora.ALL_PROJECTIONS)
    model = lora._lora_model(bases.load_model(checkpoint, "fp32"), cfg)
    config = model.base_model.model.config
    path = tmp / f"{base.name}-all.gguf"
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    export.export(get_peft_model_state_dict(model), path, base.architecture, cfg.alpha,
                  config.num_hidden_layers, config.num_attention_heads, kv_heads)  # fmt: skip
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--gen-runs", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    out: dict[str, Any] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "versions": {
            p: metadata.version(p)
            for p in ("torch", "transformers", "peft", "llama_cpp_python", "gguf")
        },  # fmt: skip
        "settings": {
            "seq_len": SEQ,
            "batch": BATCH,
            "lora_r": 16,
            "targets": list(lora.DEFAULT_TARGETS),
        },  # fmt: skip
        "bases": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(None, data_dir=Path(tmp) / "data")
        for name in BASES:
            base = bases.resolve(settings, name)
            t0 = time.perf_counter()
            checkpoint = bases.prepare_checkpoint(settings, base)
            convert_s = time.perf_counter() - t0
            renderer = datasets.Renderer(bases.load_tokenizer(checkpoint), base.chat_template)
            data = examples(renderer, BATCH * (args.steps + 2))
            pad = int(renderer.tokenizer.eos_token_id)
            row: dict[str, Any] = {"checkpoint_conversion_s": round(convert_s, 1), "training": []}
            model = None
            for dtype in ("fp32", "bf16"):
                speed, model = train_speed(checkpoint, data, dtype, args.steps,
                                           Path(tmp) / f"{name}-{dtype}", pad)  # fmt: skip
                row["training"].append(speed)
                print(f"{name} {dtype}: {speed['tokens_per_s']} tokens/s")  # noqa: T201
            from peft import get_peft_model_state_dict

            config = model.base_model.model.config  # type: ignore[union-attr]
            adapter = Path(tmp) / f"{name}.gguf"
            t0 = time.perf_counter()
            info = export.export(get_peft_model_state_dict(model), adapter, base.architecture,
                                 32, config.num_hidden_layers, config.num_attention_heads,
                                 getattr(config, "num_key_value_heads", None)
                                 or config.num_attention_heads)  # fmt: skip
            row["export"] = {"seconds": round(time.perf_counter() - t0, 2),
                             "size_mb": round(info.size_bytes / 1e6, 2), "rank": info.rank,
                             "weights": info.tensors}  # fmt: skip
            row["generation"] = generation_speed(base.gguf_path, adapter, args.gen_runs)
            row["generation_all_projections"] = generation_speed(
                base.gguf_path, all_projections(checkpoint, base, Path(tmp)), args.gen_runs
            )
            g = row["generation"]
            a = row["generation_all_projections"]
            print(f"{name} export {row['export']['seconds']} s, {row['export']['size_mb']} MB; "  # noqa: T201
                  f"generation {g['base_tokens_per_s']} -> {g['adapter_tokens_per_s']} tok/s "
                  f"(adapter cost {g['adapter_cost']:.1%}; all projections "
                  f"{a['adapter_cost']:.1%})")  # fmt: skip
            out["bases"][name] = row
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.output}")  # noqa: T201


if __name__ == "__main__":
    main()
