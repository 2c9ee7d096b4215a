"""LoRA fine-tuning with transformers + PEFT on CPU: the training loop, its checkpoints and
its evaluation.

This module owns one training run. A hand-written loop rather than ``transformers.Trainer``:
a job needs to report every step (loss, tokens/s, ETA), stop between two steps when
cancelled, and resume exactly where a killed process stopped, and the loop is short.

* Precision: ``bf16`` (default) keeps the frozen base in bfloat16 and the LoRA weights and
  the loss in float32 (PEFT's default); ``fp32`` is everything in float32.
* Loss: mean cross-entropy over the tokens whose label is not ``IGNORE`` (completions and
  assistant turns; every token for plain text), averaged over the ``grad_accum`` batches
  of a step (over the batches left, for a last step with fewer). The loss a step reports
  is that same average.
* Reproducibility: the seed fixes the LoRA initialisation, dropout and the order of the
  examples (a permutation per epoch derived from the seed), so a rerun, or a resumed run,
  sees the same batches in the same order.
* Checkpoints: every ``checkpoint_every`` optimizer steps the adapter, the optimizer and
  scheduler states, the position (epoch, batch) and the RNG states are written to
  ``<work_dir>/checkpoint`` through a temporary folder and renames (the previous one moves
  to ``checkpoint.old`` until the new one is in place), so a crash leaves either the
  previous checkpoint or the new one. ``train`` resumes from the newest one present.
* Evaluation: loss and perplexity on the validation set (the training set when there is
  none) before the first step and after the last one.
* Epochs: ``Hooks.on_epoch_end`` sees the model after every epoch but the last (the job's
  runner keeps it as a servable checkpoint).
"""

from __future__ import annotations

import math
import os
import random
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genaiops.training.data import IGNORE, Example

ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# The query and value projections by default: llama.cpp applies an adapter as extra small
# matrix products per adapted weight and token, and on these small models the count of
# operations, not their size, is the cost (benchmarks/finetune.py: 5 % of SmolLM2's
# generation speed with q/v, 26 % with all seven projections).
DEFAULT_TARGETS = ("q_proj", "v_proj")


class Cancelled(Exception):
    """The job was cancelled between two steps."""


@dataclass
class TrainConfig:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    # Higher than the 1e-4-3e-4 usual for 7B models: a rank-16 adapter on q/v of a
    # 135M-270M model learns a few dozen examples in three epochs at 1e-3.
    learning_rate: float = 1e-3
    epochs: int = 3
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 256
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    seed: int = 0
    dtype: str = "bf16"  # "bf16" or "fp32"
    checkpoint_every: int = 20

    def validate(self) -> None:
        checks = [
            (1 <= self.r <= 256, "r must be between 1 and 256"),
            (0 < self.alpha <= 1024, "alpha must be between 1 and 1024"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (0 <= self.seed < 2**32, "seed must be between 0 and 4294967295"),
            (self.checkpoint_every >= 0, "checkpoint_every must be 0 (none) or more"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay must not be negative"),
            (0 < self.learning_rate < 1, "learning_rate must be in (0, 1)"),
            (1 <= self.epochs <= 100, "epochs must be between 1 and 100"),
            (1 <= self.batch_size <= 256, "batch_size must be between 1 and 256"),
            (1 <= self.grad_accum <= 256, "grad_accum must be between 1 and 256"),
            (16 <= self.max_length <= 32768, "max_length must be between 16 and 32768"),
            (self.dtype in ("bf16", "fp32"), "dtype must be bf16 or fp32"),
            (bool(self.target_modules), "target_modules must not be empty"),
            (set(self.target_modules) <= set(ALL_PROJECTIONS),
             f"target_modules must be among {', '.join(ALL_PROJECTIONS)}"),
        ]  # fmt: skip
        errors = [msg for ok, msg in checks if not ok]
        if errors:
            raise ValueError("; ".join(errors))

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        out["target_modules"] = list(self.target_modules)
        return out


@dataclass
class Progress:
    step: int
    total_steps: int
    epoch: int
    loss: float
    learning_rate: float
    tokens_per_s: float
    eta_s: float


@dataclass
class RunState:
    """Where a run stands; saved with every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # batches of ``epoch`` already seen
    losses: list[float] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0


@dataclass
class Hooks:
    """How a run reports and is stopped (a job's runner, the CLI's progress bar)."""

    on_step: Callable[[Progress], None] = lambda p: None
    on_event: Callable[[str], None] = lambda message: None
    should_cancel: Callable[[], bool] = lambda: False
    # After every epoch but the last (the last one's model is the result): the epoch
    # number (from 1), the optimizer step and the model. A resumed run may call it again
    # for an epoch it had finished, so it must be idempotent.
    on_epoch_end: Callable[[int, int, Any], None] = lambda epoch, step, model: None


@dataclass
class TrainResult:
    steps: int
    trained_tokens: int
    seconds: float
    tokens_per_s: float
    losses: list[float]
    eval_before: dict[str, float]
    eval_after: dict[str, float]
    resumed_from_step: int = 0


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def batches(examples: Sequence[Example], size: int, seed: int, epoch: int) -> list[list[int]]:
    order = np.random.default_rng([seed, epoch]).permutation(len(examples))
    return [order[i : i + size].tolist() for i in range(0, len(order), size)]


def group_sizes(total_batches: int, grad_accum: int) -> list[int]:
    """For each batch of a run, the number of batches in its optimizer step: ``grad_accum``,
    or fewer for the last step when ``total_batches`` is not a multiple of it."""
    return [min(grad_accum, total_batches - i // grad_accum * grad_accum)
            for i in range(total_batches)]  # fmt: skip


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, Any]:
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def token_loss(model: Any, batch: dict[str, Any]) -> tuple[Any, int]:
    """Summed cross-entropy over the labelled tokens (float32), and their count."""
    import torch
    import torch.nn.functional as F

    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    logits = out.logits[:, :-1, :].float()
    target = batch["labels"][:, 1:]
    loss = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=IGNORE,
        reduction="sum",
    )  # fmt: skip
    return loss, int((target != IGNORE).sum().item()) if torch.is_tensor(target) else 0


def evaluate(
    model: Any, examples: Sequence[Example], pad_id: int, batch_size: int
) -> dict[str, float]:
    import torch

    if not examples:
        return {}
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            loss, n = token_loss(model, collate(examples[start : start + batch_size], pad_id))
            total += float(loss)
            count += n
    model.train()
    mean = total / max(count, 1)
    return {"loss": round(mean, 5), "perplexity": round(math.exp(min(mean, 50.0)), 4)}


def _lora_model(base: Any, cfg: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in base.named_modules()}
    targets = [t for t in cfg.target_modules if t in present]
    if not targets:
        raise ValueError(f"none of {list(cfg.target_modules)} exist in this model")
    config = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
        bias="none",
    )
    with warnings.catch_warnings():
        # PEFT still asks transformers for a renamed property; nothing for a user to act on.
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
        )
        return get_peft_model(base, config)


def _schedule(total_steps: int, warmup: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def train(
    model_loader: Callable[[], Any],
    train_set: Sequence[Example],
    eval_set: Sequence[Example],
    cfg: TrainConfig,
    work_dir: Path,
    pad_id: int,
    hooks: Hooks | None = None,
) -> tuple[Any, TrainResult]:
    """Fine-tune; returns the PEFT model and what happened. Resumes from ``work_dir``'s
    checkpoint when there is one; raises ``Cancelled`` when ``hooks.should_cancel``."""
    import torch

    hooks = hooks or Hooks()
    cfg.validate()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    seed_everything(cfg.seed)
    model = _lora_model(model_loader(), cfg)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    total_steps = max(1, math.ceil(per_epoch * cfg.epochs / cfg.grad_accum))
    warmup = max(1, int(total_steps * cfg.warmup_ratio))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(total_steps, warmup))

    state = RunState()
    eval_before: dict[str, float] = {}
    checkpoint = work_dir / "checkpoint"
    saved = latest_checkpoint(checkpoint)
    if saved is not None:
        state, eval_before = _restore(saved, model, optimizer, scheduler)
        hooks.on_event(f"resumed from step {state.step} of {total_steps}")
    else:
        eval_before = evaluate(model, eval_set or train_set, pad_id, cfg.batch_size)
        hooks.on_event(f"validation before training: {eval_before}")
    resumed_from = state.step

    started = time.monotonic() - state.seconds
    window: list[tuple[float, int]] = []
    # Checkpoints are taken after optimizer steps only, so a resumed run starts a new group.
    sizes = group_sizes(per_epoch * cfg.epochs, cfg.grad_accum)
    accum, group_loss = 0, 0.0
    for epoch in range(state.epoch, cfg.epochs):
        plan = batches(train_set, cfg.batch_size, cfg.seed, epoch)
        first = state.batch if epoch == state.epoch else 0
        for b in range(first, len(plan)):
            if hooks.should_cancel():
                raise Cancelled(f"cancelled at step {state.step}")
            t0 = time.monotonic()
            batch = collate([train_set[i] for i in plan[b]], pad_id)
            loss_sum, n = token_loss(model, batch)
            size = sizes[epoch * per_epoch + b]
            mean = loss_sum / max(n, 1)
            (mean / size).backward()
            group_loss += float(mean.detach()) / size
            accum += 1
            state.tokens += n
            window.append((time.monotonic() - t0, int(batch["attention_mask"].sum())))
            state.batch, state.epoch = b + 1, epoch
            last = b == len(plan) - 1 and epoch == cfg.epochs - 1
            if accum < size and not last:
                continue
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.losses.append(round(group_loss, 5))
            accum, group_loss = 0, 0.0
            state.seconds = time.monotonic() - started
            hooks.on_step(_progress(state, total_steps, window, scheduler, started))
            if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0 and not last:
                _save(checkpoint, model, optimizer, scheduler, state, eval_before)
        if epoch < cfg.epochs - 1 and state.step > 0:
            # With gradient accumulation across epochs, two epochs may end on one step
            # (the hook sees the same weights twice) and the first may end before any.
            hooks.on_epoch_end(epoch + 1, state.step, model)
        state.batch = 0
        state.epoch = epoch + 1

    eval_after = evaluate(model, eval_set or train_set, pad_id, cfg.batch_size)
    hooks.on_event(f"validation after training: {eval_after}")
    seconds = time.monotonic() - started
    result = TrainResult(
        steps=state.step,
        trained_tokens=state.tokens,
        seconds=round(seconds, 2),
        tokens_per_s=round(sum(t for _, t in window) / max(sum(s for s, _ in window), 1e-9), 1),
        losses=list(state.losses),
        eval_before=eval_before,
        eval_after=eval_after,
        resumed_from_step=resumed_from,
    )
    return model, result


def _progress(
    state: RunState, total: int, window: list[tuple[float, int]], scheduler: Any,
    started: float,
) -> Progress:  # fmt: skip
    recent = window[-20:]
    secs = sum(s for s, _ in recent)
    step = state.step
    elapsed = time.monotonic() - started
    return Progress(
        step=step,
        total_steps=total,
        epoch=state.epoch,
        loss=state.losses[-1],
        learning_rate=float(scheduler.get_last_lr()[0]),
        tokens_per_s=round(sum(t for _, t in recent) / secs, 1) if secs else 0.0,
        eta_s=round(elapsed / max(step, 1) * (total - step), 1),
    )


def _save(
    path: Path, model: Any, optimizer: Any, scheduler: Any, state: RunState,
    eval_before: dict[str, float],
) -> None:  # fmt: skip
    import torch
    from peft import get_peft_model_state_dict

    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(
        {
            "adapter": get_peft_model_state_dict(model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "state": asdict(state),
            "eval_before": eval_before,
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": np.random.get_state(),
                "python": random.getstate(),
            },
        },
        tmp / "state.pt",
    )
    old = path.with_name(path.name + ".old")
    if path.exists():
        # Without ``path`` (a crash between the two renames) ``old`` is the only checkpoint
        # until the new one is in place.
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(path: Path) -> Path | None:
    """The checkpoint to resume from: ``path``, or the previous one that ``_save`` had
    moved aside when a crash stopped it before the new one took its place."""
    for candidate in (path, path.with_name(path.name + ".old")):
        if (candidate / "state.pt").exists():
            return candidate
    return None


def _restore(
    path: Path, model: Any, optimizer: Any, scheduler: Any
) -> tuple[RunState, dict[str, float]]:
    import torch
    from peft import set_peft_model_state_dict

    saved = torch.load(path / "state.pt", weights_only=False)
    set_peft_model_state_dict(model, saved["adapter"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"]["torch"])
    np.random.set_state(saved["rng"]["numpy"])
    random.setstate(saved["rng"]["python"])
    return RunState(**saved["state"]), dict(saved["eval_before"])
