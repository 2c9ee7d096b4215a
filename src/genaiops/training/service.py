"""Fine-tuning as a service: uploaded files, job creation with validation up front, and the
background runner that trains queued jobs one at a time in a worker process.

* Files (``/v1/files``, purpose ``fine-tune``) belong to a tenant; their bytes live under
  ``<data_dir>/files/`` and are written to a temporary name first. A plain-text upload
  (``.txt``, ``.md``) is stored as ``<id>.txt``/``<id>.md``: the training-file loader tells
  text from JSONL by the suffix.
* ``create_job`` validates the training and validation files with the base model's own
  tokenizer before queueing (every problem with its line number, in one 400), so a job that
  is queued can be trained. Only the base's tokenizer is needed for that (converted from
  the GGUF once per base, in seconds); the job itself converts the weights on first use.
* ``JobRunner`` is a thread in the server: it requeues jobs whose runner died, takes the
  next queued job when the data directory's training slot is free, and trains it in a
  child process (``python -m genaiops.training.worker``), so training never holds the
  server's GIL, a crash in native code cannot take the server down, and a cancelled job
  that does not stop in time is terminated. The child resumes from the job's checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import delete, insert, select, tuple_

from genaiops.config import Settings
from genaiops.errors import InvalidRequest, NotFound, PayloadTooLarge
from genaiops.registry.service import check_name
from genaiops.storage.db import Database
from genaiops.storage.tables import files
from genaiops.training import base as bases
from genaiops.training import lora, runner
from genaiops.training.data import TEXT_SUFFIXES, public_file_name
from genaiops.training.jobs import Job, JobStore, now_us

log = logging.getLogger("genaiops.training")
CANCEL_GRACE_S = 60.0
MAX_ATTEMPTS = 3


class FineTuning:
    def __init__(self, settings: Settings, db: Database):
        self.settings = settings
        self.db = db
        self.jobs = JobStore(db)

    # -- files -----------------------------------------------------------------------------

    def files_dir(self) -> Path:
        return self.settings.data_dir / "files"

    def save_file(
        self, tenant: str, filename: str, purpose: str, source: BinaryIO
    ) -> dict[str, Any]:
        if purpose != "fine-tune":
            raise InvalidRequest("purpose must be 'fine-tune'", param="purpose")
        file_id = "file-" + secrets.token_hex(12)
        folder = self.files_dir()
        folder.mkdir(parents=True, exist_ok=True)
        limit = self.settings.finetune.max_upload_bytes
        digest, size = hashlib.sha256(), 0
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                while block := source.read(1 << 20):
                    size += len(block)
                    if size > limit:
                        raise PayloadTooLarge(f"the file is larger than {limit} bytes")
                    digest.update(block)
                    out.write(block)
            os.replace(tmp_name, folder / _stored_name(file_id, filename))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
        row = {"id": file_id, "tenant": tenant, "filename": Path(filename).name[:255] or "upload",
               "purpose": purpose, "bytes": size, "sha256": digest.hexdigest(),
               "created_us": now_us()}  # fmt: skip
        with self.db.begin() as conn:
            conn.execute(insert(files).values(**row))
        return _file_public(row)

    def get_file(self, tenant: str | None, file_id: str, param: str = "file_id") -> dict[str, Any]:
        query = select(files).where(files.c.id == file_id)
        if tenant is not None:
            query = query.where(files.c.tenant == tenant)
        with self.db.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"no file {file_id!r}", param=param, code="file_not_found")
        return _file_public(dict(row._mapping))

    def list_files(
        self,
        tenant: str | None,
        limit: int = 10_000,
        after: str | None = None,
        order: str = "desc",
        purpose: str | None = None,
    ) -> list[dict[str, Any]]:
        """Files in upload order (``order``), from the one after ``after`` (a file id, as
        OpenAI's cursor pages ask), at most ``limit``."""
        newest_first = order == "desc"
        keys = (files.c.created_us, files.c.id)
        query = select(files).order_by(*(k.desc() if newest_first else k for k in keys))
        if tenant is not None:
            query = query.where(files.c.tenant == tenant)
        if purpose is not None:
            query = query.where(files.c.purpose == purpose)
        with self.db.connect() as conn:
            if after is not None:
                found = select(files.c.created_us, files.c.id).where(files.c.id == after)
                if tenant is not None:  # another tenant's id is no cursor: not found
                    found = found.where(files.c.tenant == tenant)
                cursor = conn.execute(found).first()
                if cursor is None:
                    raise NotFound(f"no file {after!r}", param="after", code="file_not_found")
                position, mark = tuple_(*keys), tuple_(cursor.created_us, cursor.id)
                query = query.where(position < mark if newest_first else position > mark)
            rows = conn.execute(query.limit(limit)).all()
        return [_file_public(dict(r._mapping)) for r in rows]

    def delete_file(self, tenant: str | None, file_id: str) -> None:
        path = self.file_path(tenant, file_id)
        with self.db.begin() as conn:
            conn.execute(delete(files).where(files.c.id == file_id))
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def file_path(self, tenant: str | None, reference: str, param: str = "file_id") -> Path:
        """The path of an uploaded file id, for the API's ``training_file`` (``param``: the
        request field a missing file is reported against)."""
        meta = self.get_file(tenant, reference, param)
        path = self.files_dir() / _stored_name(reference, meta["filename"])
        if not path.exists() and (self.files_dir() / reference).exists():
            return self.files_dir() / reference  # stored before text uploads kept a suffix
        return path

    # -- jobs ------------------------------------------------------------------------------

    def create_job(
        self,
        tenant: str,
        base_model: str,
        name: str,
        training_file: Path,
        validation_file: Path | None,
        config: lora.TrainConfig,
        created_by: str | None = None,
        reserved_by: str | None = None,
        merged: bool = False,
        learning_rate_multiplier: float | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Job:
        """Validate everything that can be checked before training, then queue the job.

        ``learning_rate_multiplier`` is the one the request sent (already applied to
        ``config``), reported with the job; without one the job reports the learning rate
        used over the default one. ``metadata`` is the caller's, kept and shown as is."""
        check_name(name)
        try:
            config.validate()
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="hyperparameters") from exc
        base = bases.resolve(self.settings, base_model)
        rendered = runner.validation_renderer(self.settings, base)
        # The owner's PII policy applies as it will in training, so lengths checked here
        # are the lengths trained on.
        job_probe = Job("", tenant, base_model, name, str(training_file),
                        str(validation_file) if validation_file else None, {}, "", 0,
                        created_by=created_by)  # fmt: skip
        train, _valid = runner.load_data(self.settings, base, rendered, job_probe, config)
        multiplier = learning_rate_multiplier
        if multiplier is None:
            multiplier = round(config.learning_rate / lora.TrainConfig().learning_rate, 6)
        return self.jobs.create(
            tenant,
            base.name,
            name,
            str(training_file),
            str(validation_file) if validation_file else None,
            {
                **config.public(),
                "merged": merged,
                "metadata": metadata,
                "learning_rate_multiplier": multiplier,
            },  # fmt: skip
            created_by=created_by,
            dataset_sha256=train.sha256,
            reserved_by=reserved_by,
        )

    def public_job(self, job: Job) -> dict[str, Any]:
        """The job as the API shows it: OpenAI's object, files by their ids (or a local
        file by its name, for CLI jobs) and the estimated finish while it runs."""
        out = self.jobs.public(job)
        for key in ("training_file", "validation_file"):
            if out[key]:
                out[key] = public_file_name(out[key])
        return out

    def get_job(self, tenant: str | None, job_id: str) -> Job:
        job = self.jobs.get(job_id, tenant)
        if job is None:
            raise NotFound(f"no fine-tuning job {job_id!r}", param="fine_tuning_job_id")
        return job

    def checkpoints(
        self, tenant: str | None, job_id: str, limit: int = 10, after: str | None = None
    ) -> dict[str, Any]:
        """OpenAI's checkpoint list: one per epoch, the last being the final model, newest
        first; each ``fine_tuned_model_checkpoint`` is a model name requests may use."""
        from genaiops.registry.service import checkpoint_reference

        job = self.get_job(tenant, job_id)
        found = self.jobs.checkpoints(job.id)
        start = 0
        if after is not None:
            ids = [f"ftckpt-{c['id']}" for c in found]
            if after not in ids:
                raise NotFound(f"the job has no checkpoint {after!r} to list after", param="after")
            start = ids.index(after) + 1
        page = found[start : start + limit]
        data = []
        for c in page:
            metrics = {"step": float(c["step"]), "train_loss": c.get("train_loss")}
            if c.get("valid_loss") is not None:
                # Over the whole validation set, which is also OpenAI's "full" figure.
                metrics |= {"valid_loss": c["valid_loss"], "full_valid_loss": c["valid_loss"],
                            "valid_perplexity": c.get("valid_perplexity")}  # fmt: skip
            data.append({
                "object": "fine_tuning.job.checkpoint",
                "id": f"ftckpt-{c['id']}",
                "created_at": c["created_at"],
                "fine_tuned_model_checkpoint": checkpoint_reference(job.id, c["step"]),
                "fine_tuning_job_id": job.id,
                "step_number": c["step"],
                "epoch": c.get("epoch"),
                "final": bool(c.get("final")),
                "metrics": metrics,
            })  # fmt: skip
        return {
            "object": "list",
            "data": data,
            "has_more": start + limit < len(found),
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }

    def cancel(self, tenant: str | None, job_id: str) -> Job:
        job = self.get_job(tenant, job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            raise InvalidRequest(f"the job is already {job.status}", param="fine_tuning_job_id")
        cancelled = self.jobs.request_cancel(job_id)
        assert cancelled is not None
        return cancelled


def _stored_name(file_id: str, filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    return file_id + suffix if suffix in TEXT_SUFFIXES else file_id


def _file_public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "file",
        "bytes": row["bytes"],
        "created_at": row["created_us"] // 1_000_000,
        "filename": row["filename"],
        "purpose": row["purpose"],
        "sha256": row["sha256"],
        # OpenAI's (deprecated but required by its typed clients): stored and checked.
        "status": "processed",
        "status_details": None,
    }


class JobRunner:
    """Trains queued jobs, one at a time, in child processes (see the module docstring)."""

    def __init__(self, settings: Settings, db: Database, settings_file: Path | None = None):
        self.settings = settings
        self.store = JobStore(db)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._settings_file = settings_file
        self.current: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="genaiops-finetune", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        proc = self.current
        if proc is not None and proc.poll() is None:
            # The job stays "running" with a stale heartbeat and is resumed on the next start.
            proc.terminate()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        interval = self.settings.finetune.poll_interval_s
        while not self._stop.wait(interval):
            try:
                self.store.requeue_stale()
                self._step()
            except Exception:
                log.exception("fine-tuning runner")

    def _step(self) -> None:
        with runner.training_slot(self.settings, wait=False) as lock:
            if lock is None:
                return
            job = self.store.claim(runner.worker_name())
            if job is None:
                return
            self._train(job, lock)

    def _train(self, job: Job, lock: int) -> None:
        settings_json = self._settings_json()
        cmd = [
            sys.executable,
            "-m",
            "genaiops.training.worker",
            job.id,
            "--settings",
            settings_json,
        ]
        log_path = runner.job_dir(self.settings, job.id) / "worker.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            # The worker inherits the training lock: it outlives this process if need be.
            self.current = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, pass_fds=(lock,)
            )
            cancel_seen: float | None = None
            while self.current.poll() is None:
                if self._stop.wait(self.settings.finetune.poll_interval_s):
                    return
                if cancel_seen is None and self.store.cancel_requested(job.id):
                    cancel_seen = now_us() / 1e6
                if cancel_seen is not None and now_us() / 1e6 - cancel_seen > CANCEL_GRACE_S:
                    self.current.terminate()
        code = self.current.returncode
        self.current = None
        final = self.store.get(job.id)
        if final is None or final.status != "running":
            return
        if self.store.cancel_requested(job.id):
            self.store.finish(job.id, "cancelled")
            return
        # Killed (out of memory, an operator, a crash in native code): try again from the
        # last checkpoint, a few times, before calling it failed.
        attempt = final.result.get("attempts", 0) + 1
        if attempt < MAX_ATTEMPTS:
            self.store.update(job.id, result={**final.result, "attempts": attempt})
            self.store.requeue(
                job.id,
                f"the worker exited with code {code}; resuming from the last checkpoint "
                f"(attempt {attempt + 1} of {MAX_ATTEMPTS})",
            )
            return
        self.store.event(job.id, "error", f"the worker exited with code {code}")
        self.store.finish(
            job.id, "failed",
            error={"code": "worker_died", "message": f"exit code {code}; see worker.log"},
        )  # fmt: skip

    def _settings_json(self) -> str:
        if self._settings_file is None:
            folder = self.settings.data_dir / "training"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "worker-settings.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(self.settings.model_dump_json())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
            self._settings_file = path
        return str(self._settings_file)
