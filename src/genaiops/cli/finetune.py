"""genaiops finetune / jobs / registry: LoRA fine-tuning, its jobs, and the model registry.

``finetune`` validates the data, queues a job and runs it in the foreground with a progress
bar (steps, loss, tokens/s, ETA); Ctrl-C stops it and ``genaiops jobs resume ID`` continues
from its last checkpoint (a running server's job runner also picks it up after two minutes),
as does running the same command again (same inputs, same data, its process gone).
``--detach`` only queues it for the server's runner. Everything acts on the data directory
directly, like the other administrative commands.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from genaiops.cli.common import (
    ConfigOption,
    cli_errors,
    command_group,
    settings_from,
    valid_tenant,
    write,
)
from genaiops.cli.keys import JsonOption, _emit, audit_event
from genaiops.config import Settings
from genaiops.errors import InvalidRequest
from genaiops.security.principal import SYSTEM_TENANT
from genaiops.storage.db import Database

jobs_app = command_group("Fine-tuning jobs: list, show, events, cancel, resume.")
registry_app = command_group("The model registry: versions, lineage, aliases.")
alias_app = command_group("Aliases (champion, challenger...) that serving resolves.")
registry_app.add_typer(alias_app, name="alias")

TenantOption = Annotated[
    str, typer.Option("--tenant", help="Tenant the model belongs to.", callback=valid_tenant)
]
_JOB_COLUMNS = [
    "id",
    "status",
    "model",
    "suffix",
    "fine_tuned_model",
    "trained_tokens",
    "created_at",
]


@contextmanager
def _database(config: Path | None) -> Iterator[tuple[Settings, Database]]:
    settings = settings_from(config)
    db = Database(settings.database_url())
    try:
        yield settings, db
    finally:
        db.close()


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]fine-tuning"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  {task.fields[speed]} tok/s"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _run_foreground(settings: Settings, db: Database, job_id: str, quiet: bool) -> Any:
    from genaiops.training import lora, runner
    from genaiops.training.jobs import JobStore

    store = JobStore(db)
    console = Console(stderr=True, quiet=quiet)
    with runner.training_slot(settings, wait=False) as free:
        if free is None:
            console.print("another fine-tuning job is running here; waiting for it to finish")
    with runner.training_slot(settings):
        job = store.claim(f"cli:{runner.worker_name()}", job_id)
        if job is None:
            current = store.get(job_id)
            raise InvalidRequest(f"job {job_id} is {current.status if current else 'missing'}")
        with _bar(console) as bar:
            task = bar.add_task("train", total=None, loss="-", speed="-")

            def on_step(p: lora.Progress) -> None:
                bar.update(task, completed=p.step, total=p.total_steps, loss=f"{p.loss:.4f}",
                           speed=f"{p.tokens_per_s:.0f}")  # fmt: skip

            hooks = lora.Hooks(on_step=on_step, on_event=lambda m: console.print(m, markup=False))
            return runner.run(settings, db, job, hooks)


@contextmanager
def _interrupted_job(db: Database, job_id: str) -> Iterator[None]:
    from genaiops.training.jobs import JobStore

    try:
        yield
    except KeyboardInterrupt:
        JobStore(db).requeue(job_id, "interrupted; resume with: genaiops jobs resume " + job_id)
        typer.echo(f"interrupted; resume with: genaiops jobs resume {job_id}", err=True)
        raise typer.Exit(130) from None


def _resume(settings: Settings, db: Database, job: Any, reason: str, as_json: bool) -> None:
    """Continue an interrupted job from its last checkpoint, in the foreground."""
    from genaiops.training.jobs import JobStore

    with _interrupted_job(db, job.id):
        if job.status == "running":
            JobStore(db).requeue(job.id, reason)
        final = _run_foreground(settings, db, job.id, quiet=as_json)
    _report(final, as_json)


def _interrupted_twin(
    db: Database, tenant: str, base: str, name: str, data: Path, eval_file: Path | None,
    config: dict[str, Any],
) -> Any:  # fmt: skip
    """An unfinished job of this very command (same inputs, same data) whose process is
    gone: running the command again continues it instead of starting over."""
    from genaiops.training.data import file_sha256
    from genaiops.training.jobs import JobStore

    if not data.is_file():
        return None  # create_job reports it
    return JobStore(db).interrupted_twin(
        tenant, base, name, str(data.resolve()), str(eval_file.resolve()) if eval_file else None,
        config, file_sha256(data),
    )  # fmt: skip


def finetune(
    base: Annotated[str, typer.Option("--base", help="Base model (a local GGUF catalog model).")],
    data: Annotated[Path, typer.Option("--data", help="Training file: JSONL or text.")],
    name: Annotated[str, typer.Option("--name", help="Registered model name.")],
    eval_file: Annotated[Path | None, typer.Option("--eval", help="Validation file.")] = None,
    epochs: Annotated[int, typer.Option("--epochs")] = 3,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 4,
    grad_accum: Annotated[int, typer.Option("--grad-accum")] = 1,
    learning_rate: Annotated[float, typer.Option("--lr")] = 1e-3,
    r: Annotated[int, typer.Option("--r", help="LoRA rank.")] = 16,
    alpha: Annotated[int, typer.Option("--alpha", help="LoRA alpha.")] = 32,
    dropout: Annotated[float, typer.Option("--dropout")] = 0.05,
    target_modules: Annotated[
        str | None,
        typer.Option("--target-modules", help="Comma-separated (default q_proj,v_proj; 'all')."),
    ] = None,
    max_length: Annotated[int, typer.Option("--max-length")] = 256,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    dtype: Annotated[str, typer.Option("--dtype", help="bf16 or fp32.")] = "bf16",
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every")] = 20,
    tenant: Annotated[str, typer.Option("--tenant", callback=valid_tenant)] = SYSTEM_TENANT,
    detach: Annotated[bool, typer.Option("--detach", help="Queue for the server.")] = False,
    merged: Annotated[
        bool, typer.Option("--merged", help="Serve a merged checkpoint with transformers.")
    ] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fine-tune a LoRA adapter on a base model and register it as NAME version N."""
    from genaiops.training.lora import ALL_PROJECTIONS, DEFAULT_TARGETS, TrainConfig
    from genaiops.training.runner import worker_name
    from genaiops.training.service import FineTuning

    with cli_errors(), _database(config) as (settings, db):
        modules = tuple(m.strip() for m in target_modules.split(",")) if target_modules else None
        if modules == ("all",):
            modules = ALL_PROJECTIONS
        cfg = TrainConfig(r=r, alpha=alpha, dropout=dropout, learning_rate=learning_rate,
                          epochs=epochs, batch_size=batch_size, grad_accum=grad_accum,
                          max_length=max_length, seed=seed, dtype=dtype,
                          checkpoint_every=checkpoint_every,
                          target_modules=modules or DEFAULT_TARGETS)  # fmt: skip
        service = FineTuning(settings, db)
        inputs = {**cfg.public(), "merged": merged}
        twin = None if detach else _interrupted_twin(db, tenant, base, name, data, eval_file,
                                                     inputs)  # fmt: skip
        if twin is not None:
            typer.echo(f"{twin.id}: the same job was interrupted; it resumes from its last "
                       "checkpoint", err=True)  # fmt: skip
            _resume(settings, db, twin, "resumed by running the same command again", as_json)
            return
        job = service.create_job(
            tenant, base, name, data.resolve(), eval_file.resolve() if eval_file else None, cfg,
            created_by="cli", reserved_by=None if detach else f"cli:{worker_name()}",
            merged=merged,
        )  # fmt: skip
        audit_event(config, "finetune.created", tenant, job=job.id, base=job.base_model,
               name=job.name, dataset_sha256=job.dataset_sha256)  # fmt: skip
        if detach:
            _emit(job.public(), as_json, _JOB_COLUMNS, "queued")
            return
        typer.echo(f"{job.id}: {len(data.read_bytes())} bytes of data validated", err=True)
        with _interrupted_job(db, job.id):
            final = _run_foreground(settings, db, job.id, quiet=as_json)
        _report(final, as_json)


def _report(job: Any, as_json: bool) -> None:
    out = job.public()
    if as_json:
        write(json.dumps(out, indent=2) + "\n")
    elif job.status == "succeeded":
        m = out["metrics"] or {}
        before = next((v for k, v in m.items() if k.endswith("perplexity_before")), None)
        after = next((v for k, v in m.items() if k.endswith("perplexity_after")), None)
        write(f"{job.id}: succeeded -> {job.fine_tuned_model} "
              f"(perplexity {before} -> {after}); serve it as "
              f"model=\"{job.fine_tuned_model}\" or set an alias\n")  # fmt: skip
    else:
        reason = (job.error or {}).get("message", "")
        typer.echo(f"{job.id}: {job.status}" + (f": {reason}" if reason else ""), err=True)
    if job.status in ("failed", "cancelled"):
        raise typer.Exit(1)


@jobs_app.command("list")
def list_jobs(
    tenant: Annotated[str | None, typer.Option("--tenant", callback=valid_tenant)] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 20,
    after: Annotated[
        str | None, typer.Option("--after", help="List the jobs older than this job id.")
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fine-tuning jobs, newest first (page with --after the last id shown)."""
    from genaiops.training.jobs import JobStore

    with cli_errors(), _database(config) as (_, db):
        store = JobStore(db)
        rows = [store.public(j) for j in store.list_jobs(tenant, limit, after)]
    _emit(rows, as_json, _JOB_COLUMNS, "fine-tuning jobs")


def _job(db: Database, job_id: str) -> Any:
    from genaiops.errors import NotFound
    from genaiops.training.jobs import JobStore

    job = JobStore(db).get(job_id)
    if job is None:
        raise NotFound(f"no fine-tuning job {job_id!r}")
    return job


@jobs_app.command("show")
def show_job(job_id: str, config: ConfigOption = None) -> None:
    """A job with its hyperparameters, metrics and lineage (JSON)."""
    from genaiops.training.jobs import JobStore

    with cli_errors(), _database(config) as (_, db):
        write(json.dumps(JobStore(db).public(_job(db, job_id)), indent=2) + "\n")


@jobs_app.command("events")
def job_events(
    job_id: str,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
    config: ConfigOption = None,
) -> None:
    """The job's events, oldest first."""
    from genaiops.training.jobs import JobStore

    with cli_errors(), _database(config) as (_, db):
        _job(db, job_id)
        for event in reversed(JobStore(db).events(job_id, limit)):
            write(f"{event['created_at']} {event['level']:5} {event['message']}\n")


@jobs_app.command("checkpoints")
def job_checkpoints(job_id: str, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """The job's checkpoints (one per epoch), newest first, with the model name that serves
    each and its losses."""
    from genaiops.training.service import FineTuning

    with cli_errors(), _database(config) as (settings, db):
        listed = FineTuning(settings, db).checkpoints(None, job_id, limit=100)["data"]
    rows = [{"model": c["fine_tuned_model_checkpoint"], "step": c["step_number"],
             "epoch": c["epoch"], "train_loss": c["metrics"].get("train_loss"),
             "valid_loss": c["metrics"].get("valid_loss")} for c in listed]  # fmt: skip
    _emit(rows, as_json, ["model", "step", "epoch", "train_loss", "valid_loss"], "checkpoints")


@jobs_app.command("cancel")
def cancel_job(job_id: str, config: ConfigOption = None) -> None:
    """Cancel a queued job, or stop a running one at its next step."""
    from genaiops.training.service import FineTuning

    with cli_errors(), _database(config) as (settings, db):
        job = FineTuning(settings, db).cancel(None, job_id)
        audit_event(config, "finetune.cancelled", job.tenant, job=job.id)
        write(f"{job.id}: {job.status}{' (stopping)' if job.status == 'running' else ''}\n")


@jobs_app.command("resume")
def resume_job(job_id: str, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Continue an interrupted job from its last checkpoint, in the foreground."""
    with cli_errors(), _database(config) as (settings, db):
        _resume(settings, db, _job(db, job_id), "resumed from the command line", as_json)


# -- registry ------------------------------------------------------------------------------


def _registry(config: Path | None) -> Any:
    from genaiops.registry.service import Registry

    return Registry(settings_from(config))


@registry_app.command("list")
def registry_list(
    tenant: Annotated[str | None, typer.Option("--tenant", callback=valid_tenant)] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Registered models with their latest version and aliases."""
    with cli_errors():
        rows = _registry(config).list_models(tenant)
    _emit(rows, as_json, ["name", "tenant", "latest_version", "aliases"], "registered models")


@registry_app.command("show")
def registry_show(
    name: str, tenant: TenantOption = SYSTEM_TENANT, config: ConfigOption = None
) -> None:
    """Every version of NAME with its lineage (base, dataset hash, run) and metrics (JSON)."""
    with cli_errors():
        write(json.dumps(_registry(config).show(tenant, name), indent=2) + "\n")


@registry_app.command("import")
def registry_import(
    name: str,
    adapter: Annotated[Path, typer.Option("--adapter", help="A GGUF LoRA adapter file.")],
    base: Annotated[str, typer.Option("--base", help="The base model it was trained on.")],
    tenant: TenantOption = SYSTEM_TENANT,
    config: ConfigOption = None,
) -> None:
    """Register an adapter trained elsewhere as the next version of NAME (checked first)."""
    with cli_errors():
        v = _registry(config).import_adapter(tenant, name, adapter, base)
        audit_event(config, "model.registered", tenant, name=name, version=v.version, base=base)
    write(f"registered {v.model_id}\n")


@alias_app.command("set")
def alias_set(
    name: str, alias: str, version: int, tenant: TenantOption = SYSTEM_TENANT,
    config: ConfigOption = None,
) -> None:  # fmt: skip
    """Point ALIAS of NAME at VERSION (serving follows within seconds, no restart)."""
    with cli_errors():
        v = _registry(config).set_alias(tenant, name, alias, version)
        audit_event(config, "model.alias_set", tenant, name=name, alias=alias, version=version)
    write(f"{name}@{alias} -> version {v.version}\n")


@alias_app.command("delete")
def alias_delete(
    name: str, alias: str, tenant: TenantOption = SYSTEM_TENANT, config: ConfigOption = None
) -> None:
    """Remove ALIAS from NAME."""
    with cli_errors():
        _registry(config).delete_alias(tenant, name, alias)
        audit_event(config, "model.alias_deleted", tenant, name=name, alias=alias)
    write(f"{name}@{alias} deleted\n")


@registry_app.command("delete")
def registry_delete(
    name: str,
    version: Annotated[
        int | None, typer.Option("--version", help="Delete this version only.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Also delete the aliases that point at it.")
    ] = False,
    tenant: TenantOption = SYSTEM_TENANT,
    config: ConfigOption = None,
) -> None:
    """Delete NAME with all its versions, or one --version. Refused while an alias points at
    it unless --force; the runs and their artifacts stay in the tracking store."""
    with cli_errors():
        registry = _registry(config)
        if version is None:
            versions = registry.delete_model(tenant, name, force)
            audit_event(config, "model.deleted", tenant, name=name, versions=versions)
            count = f"{len(versions)} version{'' if len(versions) == 1 else 's'}"
            write(f"deleted {name} ({count})\n")
            return
        gone = registry.delete_version(tenant, name, version, force)
        audit_event(config, "model.version_deleted", tenant, name=name, version=version,
               aliases=list(gone.aliases))  # fmt: skip
    write(f"deleted {gone.model_id}\n")
