"""Fine-tuning jobs and their events in the metadata database.

This module owns the job rows: creating them, the status machine, events (what
``GET /v1/fine_tuning/jobs/{id}/events`` and the CLI show), cancellation requests, and how a
runner claims the next queued job. Claiming is one conditional UPDATE (``queued`` ->
``running`` only if still queued), so two runners (two replicas, or the server and a CLI)
never take the same job; one training at a time per data directory is enforced by the
runner's lock, not here.

A job's ``config`` holds its training settings (``lora.TrainConfig``) and the job's own
choices: ``merged``, the ``learning_rate_multiplier`` it reports and the caller's
``metadata`` (up to 16 string pairs, shown as OpenAI shows them).

A job whose runner died (killed process, power loss) stays ``running`` with a stale
heartbeat; ``requeue_stale`` puts it back in the queue and the next run resumes from its
checkpoint.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, insert, or_, select, update

from genaiops.errors import NotFound
from genaiops.storage.db import Database
from genaiops.storage.tables import fine_tuning_events, fine_tuning_jobs

STATUSES = ("validating_files", "queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")
STALE_AFTER_S = 120.0


def now_us() -> int:
    return int(time.time() * 1_000_000)


# The message prefix of the events that record a servable checkpoint.
CHECKPOINT_EVENT = "checkpoint"


@dataclass
class Job:
    id: str
    tenant: str
    base_model: str
    name: str
    training_file: str
    validation_file: str | None
    config: dict[str, Any]
    status: str
    created_us: int
    created_by: str | None = None
    error: dict[str, Any] | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    result: dict[str, Any] = field(default_factory=dict)
    dataset_sha256: str | None = None
    run_id: str | None = None
    cancel_requested: bool = False
    worker: str | None = None
    heartbeat_us: int | None = None
    started_us: int | None = None
    finished_us: int | None = None

    @classmethod
    def from_row(cls, row: Any) -> Job:
        m = row._mapping
        return cls(
            id=m["id"],
            tenant=m["tenant"],
            base_model=m["base_model"],
            name=m["name"],
            training_file=m["training_file"],
            validation_file=m["validation_file"],
            config=json.loads(m["config"]),
            status=m["status"],
            created_us=m["created_us"],
            created_by=m["created_by"],
            error=json.loads(m["error"]) if m["error"] else None,
            fine_tuned_model=m["fine_tuned_model"],
            trained_tokens=m["trained_tokens"],
            result=json.loads(m["result"]) if m["result"] else {},
            dataset_sha256=m["dataset_sha256"],
            run_id=m["run_id"],
            cancel_requested=bool(m["cancel_requested"]),
            worker=m["worker"],
            heartbeat_us=m["heartbeat_us"],
            started_us=m["started_us"],
            finished_us=m["finished_us"],
        )

    def public(self, estimated_finish: int | None = None) -> dict[str, Any]:
        """OpenAI's fine-tuning job object, plus genaiops' lineage and metrics.

        ``hyperparameters`` has OpenAI's three (the values used) and the LoRA settings;
        ``learning_rate_multiplier`` is the one the request sent, or the learning rate used
        over the default one. ``estimated_finish`` comes from the store (``JobStore.public``).
        """
        cfg = self.config
        openai_hyper = {
            "n_epochs": cfg.get("epochs"),
            "batch_size": cfg.get("batch_size"),
            "learning_rate_multiplier": cfg.get("learning_rate_multiplier"),
        }
        error = None
        if self.error:
            error = {"code": self.error.get("code") or "server_error",
                     "message": self.error.get("message") or "",
                     "param": self.error.get("param")}  # fmt: skip
        return {
            "id": self.id,
            "object": "fine_tuning.job",
            "created_at": self.created_us // 1_000_000,
            "finished_at": self.finished_us // 1_000_000 if self.finished_us else None,
            "started_at": self.started_us // 1_000_000 if self.started_us else None,
            "estimated_finish": estimated_finish if self.status == "running" else None,
            "model": self.base_model,
            "fine_tuned_model": self.fine_tuned_model,
            "organization_id": self.tenant,
            "status": self.status,
            "training_file": self.training_file,
            "validation_file": self.validation_file,
            "hyperparameters": {
                **openai_hyper,
                "learning_rate": cfg.get("learning_rate"),
                "lora_r": cfg.get("r"),
                "lora_alpha": cfg.get("alpha"),
                "lora_dropout": cfg.get("dropout"),
                "gradient_accumulation_steps": cfg.get("grad_accum"),
                "max_length": cfg.get("max_length"),
                "target_modules": cfg.get("target_modules"),
                "dtype": cfg.get("dtype"),
            },
            "method": {"type": "supervised", "supervised": {"hyperparameters": openai_hyper}},
            "metadata": cfg.get("metadata"),
            "integrations": [],
            "seed": cfg.get("seed"),
            "suffix": self.name,
            "user_provided_suffix": self.name,
            "trained_tokens": self.trained_tokens,
            "error": error,
            "result_files": [],
            "metrics": self.result.get("metrics"),
            "dataset_sha256": self.dataset_sha256,
            "mlflow_run_id": self.run_id,
        }


class JobStore:
    def __init__(self, db: Database):
        self.db = db

    def create(
        self,
        tenant: str,
        base_model: str,
        name: str,
        training_file: str,
        validation_file: str | None,
        config: dict[str, Any],
        created_by: str | None = None,
        dataset_sha256: str | None = None,
        reserved_by: str | None = None,
    ) -> Job:
        """A queued job; ``reserved_by`` keeps other runners from claiming it (the CLI runs
        its own job in the foreground)."""
        job_id = "ftjob-" + secrets.token_hex(12)
        with self.db.begin() as conn:
            conn.execute(
                insert(fine_tuning_jobs).values(
                    id=job_id,
                    tenant=tenant,
                    created_by=created_by,
                    base_model=base_model,
                    name=name,
                    training_file=training_file,
                    validation_file=validation_file,
                    config=json.dumps(config, sort_keys=True),
                    status="queued",
                    dataset_sha256=dataset_sha256,
                    cancel_requested=0,
                    worker=reserved_by,
                    created_us=now_us(),
                )
            )
        self.event(job_id, "info", f"job created: {name} from {base_model}")
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str, tenant: str | None = None) -> Job | None:
        query = select(fine_tuning_jobs).where(fine_tuning_jobs.c.id == job_id)
        if tenant is not None:
            query = query.where(fine_tuning_jobs.c.tenant == tenant)
        with self.db.connect() as conn:
            row = conn.execute(query).first()
        return Job.from_row(row) if row is not None else None

    def list_jobs(
        self, tenant: str | None = None, limit: int = 20, after: str | None = None
    ) -> list[Job]:
        query = select(fine_tuning_jobs).order_by(
            fine_tuning_jobs.c.created_us.desc(), fine_tuning_jobs.c.id.desc()
        )
        if tenant is not None:
            query = query.where(fine_tuning_jobs.c.tenant == tenant)
        if after is not None:
            anchor = self.get(after, tenant)
            if anchor is None:
                raise NotFound(f"no fine-tuning job {after!r} to list after", param="after")
            # Jobs created in the same microsecond are ordered by id, as listed.
            query = query.where(
                or_(
                    fine_tuning_jobs.c.created_us < anchor.created_us,
                    and_(
                        fine_tuning_jobs.c.created_us == anchor.created_us,
                        fine_tuning_jobs.c.id < anchor.id,
                    ),
                )
            )
        with self.db.connect() as conn:
            rows = conn.execute(query.limit(limit)).all()
        return [Job.from_row(r) for r in rows]

    def update(self, job_id: str, **values: Any) -> None:
        for key in ("config", "result", "error"):
            if key in values and values[key] is not None and not isinstance(values[key], str):
                values[key] = json.dumps(values[key], sort_keys=True)
        with self.db.begin() as conn:
            conn.execute(
                update(fine_tuning_jobs).where(fine_tuning_jobs.c.id == job_id).values(**values)
            )

    def finish(self, job_id: str, status: str, **values: Any) -> None:
        assert status in FINISHED
        self.update(job_id, status=status, finished_us=now_us(), worker=None, **values)

    def event(
        self, job_id: str, level: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        with self.db.begin() as conn:
            conn.execute(
                insert(fine_tuning_events).values(
                    job_id=job_id,
                    ts_us=now_us(),
                    level=level,
                    message=message,
                    data=json.dumps(data, sort_keys=True) if data is not None else None,
                )
            )

    def public(self, job: Job) -> dict[str, Any]:
        """``job.public()`` with its estimated finish while it runs."""
        return job.public(self.estimated_finish(job))

    def estimated_finish(self, job: Job) -> int | None:
        """When a running job should finish (Unix seconds): its last step's time plus that
        step's ETA; None before the first step or once it is not running."""
        if job.status != "running":
            return None
        query = (
            select(fine_tuning_events.c.ts_us, fine_tuning_events.c.data)
            .where(fine_tuning_events.c.job_id == job.id)
            .where(fine_tuning_events.c.message.like("step %"))
            .order_by(fine_tuning_events.c.id.desc())
            .limit(1)
        )
        with self.db.connect() as conn:
            row = conn.execute(query).first()
        if row is None or not row.data:
            return None
        eta = json.loads(row.data).get("eta_s")
        if not isinstance(eta, int | float):
            return None
        return int(row.ts_us / 1_000_000 + eta)

    def last_step(self, job_id: str) -> int:
        """The last training step the job reported in its events (0 before any)."""
        query = (
            select(fine_tuning_events.c.data)
            .where(fine_tuning_events.c.job_id == job_id)
            .where(fine_tuning_events.c.message.like("step %"))
            .order_by(fine_tuning_events.c.id.desc())
            .limit(1)
        )
        with self.db.connect() as conn:
            data = conn.execute(query).scalar()
        return int(json.loads(data).get("step", 0)) if data else 0

    def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        """The job's servable checkpoints (one per epoch, the last being the final model),
        newest step first: ``{"id", "created_at", "step", ...data}``. They are recorded as
        events whose message starts with "checkpoint"; a step recorded twice (a resumed
        run) is listed once."""
        query = (
            select(fine_tuning_events)
            .where(fine_tuning_events.c.job_id == job_id)
            .where(fine_tuning_events.c.message.like(f"{CHECKPOINT_EVENT}%"))
            .order_by(fine_tuning_events.c.id)
        )
        with self.db.connect() as conn:
            rows = conn.execute(query).all()
        found: dict[int, dict[str, Any]] = {}
        for r in rows:
            data = json.loads(r.data or "{}").get("checkpoint")
            if isinstance(data, dict) and int(data.get("step", 0)) not in found:
                found[int(data["step"])] = {"id": r.id, "created_at": r.ts_us // 1_000_000,
                                            **data}  # fmt: skip
        return [found[step] for step in sorted(found, reverse=True)]

    def events(
        self, job_id: str, limit: int = 20, after: int | None = None
    ) -> list[dict[str, Any]]:
        """Newest first, as OpenAI lists them; ``after`` is an event id to page from."""
        query = (
            select(fine_tuning_events)
            .where(fine_tuning_events.c.job_id == job_id)
            .order_by(fine_tuning_events.c.id.desc())
        )
        with self.db.connect() as conn:
            if after is not None:
                known = conn.execute(
                    select(fine_tuning_events.c.id).where(
                        fine_tuning_events.c.id == after, fine_tuning_events.c.job_id == job_id
                    )
                ).first()
                if known is None:
                    raise NotFound(
                        f"the job has no event 'ftevent-{after}' to list after", param="after"
                    )
                query = query.where(fine_tuning_events.c.id < after)
            rows = conn.execute(query.limit(limit)).all()
        out = []
        for r in rows:
            data = json.loads(r.data) if r.data else None
            # OpenAI's "metrics" events are the training steps; the rest are messages,
            # whatever details they carry (a training file's statistics).
            step = isinstance(data, dict) and "step" in data
            out.append({
                "id": f"ftevent-{r.id}",
                "object": "fine_tuning.job.event",
                "created_at": r.ts_us // 1_000_000,
                "level": r.level,
                "message": r.message,
                "data": data,
                "type": "metrics" if step else "message",
            })  # fmt: skip
        return out

    def request_cancel(self, job_id: str) -> Job | None:
        """Ask for a job to stop; a queued job is cancelled at once, a running one at its
        next step (its runner sees the flag)."""
        with self.db.begin() as conn:
            conn.execute(
                update(fine_tuning_jobs)
                .where(fine_tuning_jobs.c.id == job_id, fine_tuning_jobs.c.status == "queued")
                .values(status="cancelled", finished_us=now_us(), cancel_requested=1)
            )
            conn.execute(
                update(fine_tuning_jobs)
                .where(fine_tuning_jobs.c.id == job_id, fine_tuning_jobs.c.status == "running")
                .values(cancel_requested=1)
            )
        self.event(job_id, "info", "cancellation requested")
        return self.get(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        with self.db.connect() as conn:
            value = conn.execute(
                select(fine_tuning_jobs.c.cancel_requested).where(fine_tuning_jobs.c.id == job_id)
            ).scalar()
        return bool(value)

    def claim(self, worker: str, job_id: str | None = None) -> Job | None:
        """Take the oldest unreserved queued job (or ``job_id``, reserved or not) for
        ``worker``; None if there is none."""
        for candidate in self._queued(job_id):
            with self.db.begin() as conn:
                taken = conn.execute(
                    update(fine_tuning_jobs)
                    .where(
                        and_(
                            fine_tuning_jobs.c.id == candidate,
                            fine_tuning_jobs.c.status == "queued",
                        )
                    )
                    .values(
                        status="running",
                        worker=worker,
                        heartbeat_us=now_us(),
                        started_us=now_us(),
                    )
                ).rowcount
            if taken:
                return self.get(candidate)
        return None

    def _queued(self, job_id: str | None) -> Iterator[str]:
        query = (
            select(fine_tuning_jobs.c.id)
            .where(fine_tuning_jobs.c.status == "queued")
            .order_by(fine_tuning_jobs.c.created_us)
        )
        if job_id is not None:
            query = query.where(fine_tuning_jobs.c.id == job_id)
        else:
            query = query.where(fine_tuning_jobs.c.worker.is_(None))
        with self.db.connect() as conn:
            ids = [r[0] for r in conn.execute(query.limit(10)).all()]
        yield from ids

    def heartbeat(self, job_id: str) -> None:
        self.update(job_id, heartbeat_us=now_us())

    def requeue_stale(self, stale_after_s: float = STALE_AFTER_S) -> list[str]:
        """Put back in the queue the running jobs whose runner stopped beating."""
        cutoff = now_us() - int(stale_after_s * 1_000_000)
        with self.db.connect() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    select(fine_tuning_jobs.c.id).where(
                        fine_tuning_jobs.c.status == "running",
                        fine_tuning_jobs.c.heartbeat_us < cutoff,
                    )
                ).all()
            ]
        reason = "the runner stopped; the job resumes from its last checkpoint"
        # Another replica may have requeued and claimed one meanwhile (a fresh heartbeat):
        # only a job still stale is put back.
        return [job_id for job_id in ids if self.requeue(job_id, reason, beat_before_us=cutoff)]

    def interrupted_twin(
        self,
        tenant: str,
        base_model: str,
        name: str,
        training_file: str,
        validation_file: str | None,
        config: dict[str, Any],
        dataset_sha256: str,
    ) -> Job | None:
        """The newest unfinished job with these inputs whose runner is gone (a command
        killed or interrupted): running the same command again continues it."""
        query = (
            select(fine_tuning_jobs)
            .where(
                fine_tuning_jobs.c.tenant == tenant,
                fine_tuning_jobs.c.base_model == base_model,
                fine_tuning_jobs.c.name == name,
                fine_tuning_jobs.c.training_file == training_file,
                fine_tuning_jobs.c.dataset_sha256 == dataset_sha256,
                fine_tuning_jobs.c.status.in_(("queued", "running")),
                fine_tuning_jobs.c.cancel_requested == 0,
            )
            .order_by(fine_tuning_jobs.c.created_us.desc())
        )
        wanted = json.loads(json.dumps(config))
        with self.db.connect() as conn:
            jobs = [Job.from_row(r) for r in conn.execute(query.limit(20)).all()]
        for job in jobs:
            same = job.validation_file == validation_file and all(
                job.config.get(k) == v for k, v in wanted.items()
            )
            if same and not _runner_alive(job):
                return job
        return None

    def requeue(self, job_id: str, reason: str, beat_before_us: int | None = None) -> bool:
        """Put a running job back in the queue (only if its last heartbeat is older than
        ``beat_before_us``, when given); whether it was."""
        query = update(fine_tuning_jobs).where(
            fine_tuning_jobs.c.id == job_id, fine_tuning_jobs.c.status == "running"
        )
        if beat_before_us is not None:
            query = query.where(fine_tuning_jobs.c.heartbeat_us < beat_before_us)
        with self.db.begin() as conn:
            requeued = conn.execute(query.values(status="queued", worker=None)).rowcount == 1
        if requeued:
            self.event(job_id, "warn", reason)
        return requeued


def _runner_alive(job: Job) -> bool:
    """Whether the process running or holding ``job`` still is: a command's own job
    ("cli:host:pid") is checked by its process on this host, any other by its heartbeat."""
    if job.worker is None:
        return False  # queued for anyone: a server claims it, or this command does
    parts = job.worker.split(":")
    if len(parts) == 3 and parts[0] == "cli" and parts[1] == socket.gethostname():
        try:
            os.kill(int(parts[2]), 0)
        except (ValueError, ProcessLookupError):
            return False
        except PermissionError:
            return True
        return True
    beat = job.heartbeat_us or job.started_us or job.created_us
    return now_us() - beat < int(STALE_AFTER_S * 1_000_000)
