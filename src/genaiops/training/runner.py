"""Running one fine-tuning job from its row to a registered model version.

This module owns the sequence (base checkpoint, datasets, training, export, check, tracking,
registration) and the guarantees around it:

* One training per data directory at a time: ``training_slot`` is an exclusive file lock,
  so two jobs (two CLI runs, a CLI run and the server) queue instead of sharing two cores.
* Everything a job writes lives in ``<data_dir>/training/jobs/<id>/``; its checkpoint lets
  a killed run resume, and nothing is registered before the adapter file is complete and
  has passed ``export.check`` against its base, so a crash or a full disk leaves no
  half-registered version.
* Progress goes to the job's events (every step, with loss, tokens/s and ETA), its
  heartbeat, the MLflow run (per-step training loss; validation loss and perplexity before
  and after) and optional hooks (the CLI's progress bar).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from genaiops.config import GuardPolicy, Settings
from genaiops.errors import GenaiopsError, InvalidRequest
from genaiops.registry.service import Registry
from genaiops.storage.db import Database
from genaiops.training import base as bases
from genaiops.training import data as datasets
from genaiops.training import export, lora
from genaiops.training.jobs import CHECKPOINT_EVENT, Job, JobStore
from genaiops.training.tracking import Tracker

HEARTBEAT_S = 10.0


def job_dir(settings: Settings, job_id: str) -> Path:
    return settings.data_dir / "training" / "jobs" / job_id


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextlib.contextmanager
def training_slot(settings: Settings, wait: bool = True) -> Iterator[int | None]:
    """Hold the data directory's training lock; yields its file descriptor, or None at
    once if ``wait`` is false and another process holds it.

    A worker process started with the descriptor (``pass_fds``) shares the lock: if the
    process that took it dies (a killed server), the lock stays held until the worker
    ends too, so no second training can start beside the one still running."""
    path = settings.data_dir / "training" / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield None
            return
        try:
            yield f.fileno()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def redactor(settings: Settings, job: Job | None = None) -> Callable[[], datasets.Redact] | None:
    """How training data is redacted: by the guardrails ``pii`` guard of the input policy,
    with its options (``entities``, ``keywords``, ``dni_country``) and mode, one redaction
    vault per record. For a job the policy is the one its owner's requests get (the
    configuration, then the base model's, the tenant's and the creating key's overrides).
    None when ``finetune.redact_pii`` is off or that policy has no enabled ``pii`` guard."""
    if not settings.finetune.redact_pii:
        return None
    policies = settings.guardrails.input if job is None else _owner_policies(settings, job)
    policy = policies.get("pii")
    if policy is None or not policy.enabled:
        return None
    from genaiops.guardrails.pii.redaction import Vault
    from genaiops.guardrails.service import GuardrailsService

    service = GuardrailsService(settings.guardrails)
    # Whatever the policy does with PII at serving time, training data is always redacted.
    policies = {"pii": policy.model_copy(update={"action": "redact", "threshold": None})}
    service.guard("pii", policy.options)  # invalid options fail here, before any record

    def for_record() -> datasets.Redact:
        vault = Vault()

        def redact(text: str) -> tuple[str, int]:
            outcome = service.check(text, stage="input", policies=policies, vault=vault)
            if not outcome.flagged:
                return text, 0
            return outcome.text, sum(len(r.spans) for r in outcome.results)

        return redact

    return for_record


def _owner_policies(settings: Settings, job: Job) -> dict[str, GuardPolicy]:
    from genaiops.guardrails.policies import PolicyStore
    from genaiops.security.principal import Principal

    owner = Principal(tenant=job.tenant, role="user", actor=job.created_by or "-", via="job")
    db = Database(settings.database_url())
    try:
        return PolicyStore(db, settings.guardrails).resolve("input", owner, job.base_model)
    finally:
        db.close()


def renderer_for(settings: Settings, base: bases.BaseModel) -> tuple[datasets.Renderer, Path]:
    checkpoint = bases.prepare_checkpoint(settings, base)
    tokenizer = bases.load_tokenizer(checkpoint)
    return datasets.Renderer.of(tokenizer, base.chat_template, add_bos=base.add_bos), checkpoint


def validation_renderer(settings: Settings, base: bases.BaseModel) -> datasets.Renderer:
    """The renderer of ``base`` with only its tokenizer at hand (no weights converted)."""
    tokenizer = bases.load_tokenizer(bases.prepare_tokenizer(settings, base))
    return datasets.Renderer.of(tokenizer, base.chat_template, add_bos=base.add_bos)


def load_data(
    settings: Settings, base: bases.BaseModel, renderer: datasets.Renderer, job: Job,
    cfg: lora.TrainConfig,
) -> tuple[datasets.Dataset, datasets.Dataset | None]:  # fmt: skip
    max_length = min(cfg.max_length, base.context_length)
    redact = redactor(settings, job)
    train = datasets.load(Path(job.training_file), renderer, max_length, redact)
    valid = None
    if job.validation_file:
        valid = datasets.load(
            Path(job.validation_file), renderer, max_length, redact, param="validation_file"
        )
    return train, valid


class _Heartbeat:
    """Beats for the job while a long phase (conversion, export) has no steps."""

    def __init__(self, store: JobStore, job_id: str):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(store, job_id), daemon=True)

    def _run(self, store: JobStore, job_id: str) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):
                store.heartbeat(job_id)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()


def run(settings: Settings, db: Database, job: Job, progress: lora.Hooks | None = None) -> Job:
    """Run a claimed job to its end (succeeded, failed or cancelled) and return it."""
    store = JobStore(db)
    tracker = Tracker(settings)
    outer = progress or lora.Hooks()
    with _Heartbeat(store, job.id):
        try:
            _run(settings, store, tracker, job, outer)
        except lora.Cancelled as exc:
            store.event(job.id, "info", str(exc))
            store.finish(job.id, "cancelled")
        except (GenaiopsError, ValueError, OSError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            store.event(job.id, "error", f"failed: {message}")
            error = {"code": error_code(exc), "message": message,
                     "param": getattr(exc, "param", None)}  # fmt: skip
            store.finish(job.id, "failed", error=error)
        except Exception as exc:  # a bug or a library failure: the job fails, the runner lives
            store.event(job.id, "error", f"failed: {type(exc).__name__}: {exc}")
            store.finish(
                job.id, "failed", error={"code": "internal_error", "message": str(exc)[:2000]}
            )
    final = store.get(job.id)
    assert final is not None
    if final.run_id:
        with contextlib.suppress(Exception):
            tracker.end(final.run_id, final.status)
    return final


def error_code(exc: BaseException) -> str:
    """The code a failed job reports: the domain error's own, ``disk_full`` or
    ``server_error`` for a failure of the machine (the request was not at fault), and
    ``invalid_request`` for a value the job's settings or data made invalid."""
    if isinstance(exc, OSError):
        return "disk_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "server_error"
    return str(getattr(exc, "code", None) or "invalid_request")


def _check_unchanged(job: Job) -> None:
    """Lineage names the data that was validated: a training file edited while its job
    waited in the queue is refused rather than trained on in its place."""
    path = Path(job.training_file)
    if job.dataset_sha256 is None or not path.is_file():
        return  # a missing file is reported by load_data, with the others
    now = datasets.file_sha256(path)
    if now != job.dataset_sha256:
        raise InvalidRequest(
            f"the training file changed after the job was created (sha256 "
            f"{job.dataset_sha256[:12]}…, now {now[:12]}…); create a new job to train on "
            "the new content",
            param="training_file",
            code="training_file_changed",
        )


def train_config(stored: dict[str, Any]) -> lora.TrainConfig:
    """The training settings of a job row (other keys, such as ``merged``, are the job's)."""
    fields = set(lora.TrainConfig.__dataclass_fields__) - {"target_modules"}
    targets = tuple(stored.get("target_modules") or lora.DEFAULT_TARGETS)
    return lora.TrainConfig(**{k: v for k, v in stored.items() if k in fields},
                            target_modules=targets)  # fmt: skip


def _run(
    settings: Settings, store: JobStore, tracker: Tracker, job: Job, outer: lora.Hooks
) -> None:
    cfg = train_config(job.config)
    _check_unchanged(job)
    base = bases.resolve(settings, job.base_model)
    work = job_dir(settings, job.id)
    work.mkdir(parents=True, exist_ok=True)
    store.event(job.id, "info", f"preparing base model {base.name}")
    renderer, checkpoint = renderer_for(settings, base)
    train, valid = load_data(settings, base, renderer, job, cfg)
    store.update(job.id, dataset_sha256=train.sha256)
    if train.redacted or (valid and valid.redacted):
        redacted = train.redacted + (valid.redacted if valid else 0)
        store.event(job.id, "info", f"redacted {redacted} PII value(s) before training")
    store.event(job.id, "info", f"training file: {train.format}", train.stats)

    run_id = job.run_id
    if run_id is None:
        run_id = tracker.start(
            job.id,
            {"genaiops.job_id": job.id, "genaiops.tenant": job.tenant,
             "genaiops.base_model": base.name, "genaiops.name": job.name},
        )  # fmt: skip
        store.update(job.id, run_id=run_id)
        tracker.params(
            run_id,
            {**cfg.public(), "base_model": base.name, "base_gguf": base.gguf_path.name,
             "dataset_sha256": train.sha256, "dataset_format": train.format,
             "train_examples": len(train.examples), "train_tokens": train.tokens,
             "validation_sha256": valid.sha256 if valid else "",
             "validation_examples": len(valid.examples) if valid else 0,
             "pii_redacted": train.redacted,
             "validation_pii_redacted": valid.redacted if valid else 0},
        )  # fmt: skip

    # A resumed job replays the steps after its last checkpoint; those were reported before
    # it stopped (with the same values: resumption is exact), so they are not reported
    # again. The event log and MLflow are written one after the other, so each keeps its
    # own mark (a kill between the two writes leaves them one step apart).
    evented = store.last_step(job.id)
    logged = max((step for step, _ in tracker.run_metrics(run_id, "train_loss")), default=0)

    losses: dict[int, float] = {}

    def on_step(p: lora.Progress) -> None:
        losses[p.step] = p.loss
        if p.step > evented:
            data = {k: round(v, 5) if isinstance(v, float) else v for k, v in asdict(p).items()}
            store.event(job.id, "info", f"step {p.step}/{p.total_steps}: loss {p.loss:.4f}", data)
        if p.step > logged:
            metrics = {"train_loss": p.loss, "tokens_per_s": p.tokens_per_s}
            tracker.metrics(run_id, metrics, p.step)
        outer.on_step(p)

    def on_event(message: str) -> None:
        store.event(job.id, "info", message)
        outer.on_event(message)

    def on_epoch_end(epoch: int, step: int, model: Any) -> None:
        if any(c["step"] == step for c in store.checkpoints(job.id)):
            return  # recorded before a restart, or an epoch that ended on the same step
        try:
            keep_checkpoint(epoch, step, model)
        except Exception as exc:  # a checkpoint is a convenience: training goes on
            model.train()
            store.event(job.id, "warn", f"no checkpoint at step {step}: {exc}")

    def keep_checkpoint(epoch: int, step: int, model: Any) -> None:
        valid_set = valid.examples if valid else []
        scores = lora.evaluate(model, valid_set, pad, cfg.batch_size) if valid_set else {}
        folder = work / "checkpoints"
        folder.mkdir(exist_ok=True)
        path = folder / f"step-{step}.gguf"
        _export(model, base, cfg, path)
        uri = tracker.artifact(run_id, path, f"checkpoints/step-{step}")
        path.unlink(missing_ok=True)  # the tracking store keeps it
        loss = losses.get(step)
        if loss is None:  # reported before a restart: MLflow has it
            logged_loss = [v for s, v in tracker.run_metrics(run_id, "train_loss") if s == step]
            loss = logged_loss[-1] if logged_loss else None
        _record_checkpoint(store, job.id, f"epoch {epoch}", step, epoch, uri,
                           _served_template(base, train), loss, scores)  # fmt: skip

    pad = renderer.tokenizer.pad_token_id
    pad = renderer.tokenizer.eos_token_id if pad is None else pad
    hooks = lora.Hooks(
        on_step=on_step,
        on_event=on_event,
        should_cancel=lambda: store.cancel_requested(job.id) or outer.should_cancel(),
        on_epoch_end=on_epoch_end,
    )
    model, result = lora.train(
        lambda: bases.load_model(checkpoint, cfg.dtype),
        train.examples,
        valid.examples if valid else [],
        cfg,
        work,
        int(pad),
        hooks,
    )
    _finish(settings, store, tracker, job, base, cfg, model, result, train, run_id, work,
            renderer.tokenizer)  # fmt: skip


def _finish(
    settings: Settings, store: JobStore, tracker: Tracker, job: Job, base: bases.BaseModel,
    cfg: lora.TrainConfig, model: Any, result: lora.TrainResult, train: datasets.Dataset,
    run_id: str, work: Path, tokenizer: Any,
) -> None:  # fmt: skip
    which = "validation" if job.validation_file else "train"
    metrics = {
        f"{which}_loss_before": result.eval_before.get("loss"),
        f"{which}_perplexity_before": result.eval_before.get("perplexity"),
        f"{which}_loss_after": result.eval_after.get("loss"),
        f"{which}_perplexity_after": result.eval_after.get("perplexity"),
        "final_train_loss": result.losses[-1] if result.losses else None,
        "train_tokens_per_s": result.tokens_per_s,
        "train_seconds": result.seconds,
        "steps": result.steps,
    }
    clean = {k: float(v) for k, v in metrics.items() if v is not None}
    # A job resumed after this point (killed while exporting or registering) trains its
    # last steps again; the run keeps the summary it logged the first time.
    if not any(step == result.steps for step, _ in tracker.run_metrics(run_id, "steps")):
        tracker.metrics(run_id, clean, result.steps)

    adapter = work / "adapter.gguf"
    t0 = time.monotonic()
    info = _export(model, base, cfg, adapter)
    store.event(
        job.id, "info",
        f"exported a GGUF LoRA adapter ({info.size_bytes / 1e6:.1f} MB, rank {info.rank}, "
        f"{info.tensors} weights) in {time.monotonic() - t0:.1f} s",
    )  # fmt: skip
    (work / "genaiops-adapter.json").write_text(
        json.dumps({"base_model": base.name, "architecture": base.architecture,
                    "chat_template": base.chat_template, "config": cfg.public()}, indent=2)
    )  # fmt: skip
    uri = tracker.artifact(run_id, adapter, "adapter")
    tracker.artifact(run_id, work / "genaiops-adapter.json", "adapter")
    extra_tags: dict[str, str] = {}
    if job.config.get("merged"):
        extra_tags = _merged(store, tracker, job, model, tokenizer, run_id, work)
    if store.cancel_requested(job.id):
        raise lora.Cancelled("cancelled before registration")
    tags = {
        "dataset_sha256": train.sha256,
        "dataset_format": train.format,
        "job_id": job.id,
        "run_id": run_id,
        "base_gguf": base.gguf_path.name,
        "chat_template": _served_template(base, train),
        **{f"metric.{k}": f"{v:.6g}" for k, v in clean.items()},
        **extra_tags,
    }
    version = Registry(settings).register(
        job.tenant, job.name, uri, run_id, base.name, tags,
        description=f"fine-tuned from {base.name} by job {job.id}",
    )  # fmt: skip
    store.event(job.id, "info", f"registered {job.name} version {version.version}")
    _record_checkpoint(store, job.id, "final", result.steps, cfg.epochs, uri,
                       tags["chat_template"], result.losses[-1] if result.losses else None,
                       result.eval_after if job.validation_file else {}, final=True)  # fmt: skip
    store.finish(
        job.id,
        "succeeded",
        fine_tuned_model=version.model_id,
        trained_tokens=result.trained_tokens,
        result={"metrics": metrics, "adapter": {**asdict(info), "uri": uri}},
    )
    for checkpoint in ("checkpoint", "checkpoint.old"):
        shutil.rmtree(work / checkpoint, ignore_errors=True)


def _export(model: Any, base: bases.BaseModel, cfg: lora.TrainConfig, path: Path) -> Any:
    """The model's LoRA weights as a GGUF adapter at ``path`` (written whole or not at
    all), checked against the base; returns the export's summary."""
    from peft import get_peft_model_state_dict

    config = model.base_model.model.config
    tmp = path.with_name(path.name + ".tmp")
    info = export.export(
        get_peft_model_state_dict(model),
        tmp,
        base.architecture,
        cfg.alpha,
        config.num_hidden_layers,
        config.num_attention_heads,
        getattr(config, "num_key_value_heads", None) or config.num_attention_heads,
    )
    export.check(tmp, base.gguf_path)
    os.replace(tmp, path)
    return info


def _record_checkpoint(
    store: JobStore, job_id: str, label: str, step: int, epoch: int, uri: str, template: str,
    train_loss: float | None, scores: dict[str, float], final: bool = False,
) -> None:  # fmt: skip
    """A servable checkpoint as a job event (``JobStore.checkpoints`` lists them); ``scores``
    are the validation loss and perplexity, empty without a validation file."""
    record = {"step": step, "epoch": epoch, "uri": uri, "chat_template": template,
              "train_loss": train_loss, "valid_loss": scores.get("loss"),
              "valid_perplexity": scores.get("perplexity")}  # fmt: skip
    if final:
        record["final"] = True
    store.event(job_id, "info", f"{CHECKPOINT_EVENT} at step {step} ({label})",
                {"checkpoint": record})  # fmt: skip


def _served_template(base: bases.BaseModel, train: datasets.Dataset) -> str:
    """The chat template a version is served with when its base has none: a named one
    (Gemma's) only if the model was trained on conversations in it."""
    if train.format == "chat" and base.chat_template in ("chatml", "gemma"):
        return base.chat_template
    return ""


def _merged(
    store: JobStore, tracker: Tracker, job: Job, model: Any, tokenizer: Any, run_id: str,
    work: Path,
) -> dict[str, str]:  # fmt: skip
    """Merge the adapter into the base weights and keep the result as a transformers
    checkpoint, served by the transformers engine instead of llama.cpp."""
    folder = work / "merged"
    shutil.rmtree(folder, ignore_errors=True)
    merged = model.merge_and_unload()
    merged.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    uri = tracker.artifact_dir(run_id, folder, "merged")
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    store.event(job.id, "info", f"saved the merged checkpoint ({size / 1e6:.0f} MB)")
    return {"engine": "transformers", "merged_uri": uri}
