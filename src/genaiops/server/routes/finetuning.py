"""/v1/files, /v1/fine_tuning/jobs (OpenAI-shaped) and /admin/registry.

Fine-tuning and the registry need the ``manage_models`` permission (operators and
administrators). Files, jobs and registered models belong to the caller's tenant; another
tenant's are "not found". Handlers are plain functions: job creation tokenises the whole
dataset and may convert a base model first, so it runs in FastAPI's thread pool.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import FileResponse

from genaiops.errors import InvalidRequest, NotFound
from genaiops.registry.service import Registry
from genaiops.security.principal import Principal
from genaiops.server.deps import (
    FineTuningDep,
    GatewayDep,
    ModelsManagerDep,
    SecurityDep,
    SettingsDep,
    TenantQuery,
    audit,
    owner_tenant,
)
from genaiops.server.protocol import AliasSet, ErrorResponse, FineTuningJobCreate, Hyperparameters
from genaiops.server.requests import JSONRoute
from genaiops.training import lora
from genaiops.training.lora import TrainConfig

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 413)
}
router = APIRouter(route_class=JSONRoute, tags=["fine-tuning"], responses=ERRORS)


# -- files ---------------------------------------------------------------------------------


@router.post("/v1/files")
def upload_file(
    principal: ModelsManagerDep,
    service: FineTuningDep,
    file: Annotated[UploadFile, File(description="A JSONL or text training file.")],
    purpose: Annotated[str, Form()] = "fine-tune",
    tenant: TenantQuery = None,
) -> dict[str, Any]:
    return service.save_file(
        owner_tenant(principal, tenant), file.filename or "upload", purpose, file.file
    )


@router.get("/v1/files")
def list_files(
    principal: ModelsManagerDep,
    service: FineTuningDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    after: str | None = None,
    order: Literal["asc", "desc"] = "desc",
    purpose: str | None = None,
    tenant: TenantQuery = None,
) -> dict[str, Any]:
    found = service.list_files(principal.scope(tenant), limit + 1, after, order, purpose)
    data = found[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(found) > limit,
    }


@router.get("/v1/files/{file_id}/content")
def file_content(
    file_id: str, principal: ModelsManagerDep, service: FineTuningDep, tenant: TenantQuery = None
) -> FileResponse:
    """The file's bytes, as uploaded."""
    path = service.file_path(principal.scope(tenant), file_id)
    if not path.is_file():
        raise NotFound(f"the content of file {file_id!r} is gone", param="file_id",
                       code="file_not_found")  # fmt: skip
    return FileResponse(path, media_type="application/octet-stream")


@router.get("/v1/files/{file_id}")
def get_file(
    file_id: str, principal: ModelsManagerDep, service: FineTuningDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    return service.get_file(principal.scope(tenant), file_id)


@router.delete("/v1/files/{file_id}")
def delete_file(
    file_id: str, principal: ModelsManagerDep, service: FineTuningDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    service.delete_file(principal.scope(tenant), file_id)
    return {"id": file_id, "object": "file", "deleted": True}


# -- jobs ----------------------------------------------------------------------------------


def train_config(h: Hyperparameters, seed: int | None) -> TrainConfig:
    cfg = TrainConfig()
    pairs = {
        "epochs": None if h.n_epochs == "auto" else h.n_epochs,
        "batch_size": None if h.batch_size == "auto" else h.batch_size,
        "learning_rate": h.learning_rate,
        "r": h.lora_r,
        "alpha": h.lora_alpha,
        "dropout": h.lora_dropout,
        "grad_accum": h.gradient_accumulation_steps,
        "max_length": h.max_length,
        "dtype": h.dtype,
        "checkpoint_every": h.checkpoint_every,
        "seed": seed,
    }
    for key, value in pairs.items():
        if value is not None:
            setattr(cfg, key, value)
    if isinstance(h.learning_rate_multiplier, float):
        cfg.learning_rate *= h.learning_rate_multiplier
    if h.target_modules is not None:
        all_modules = h.target_modules == ["all"]
        cfg.target_modules = lora.ALL_PROJECTIONS if all_modules else tuple(h.target_modules)
    return cfg


def hyperparameters(body: FineTuningJobCreate) -> Hyperparameters:
    """The request's hyperparameters: from OpenAI's ``method`` (supervised only) or the
    top-level ``hyperparameters``, not both."""
    if body.integrations:
        raise InvalidRequest(
            "integrations (Weights & Biases...) are not supported; runs are tracked in "
            "MLflow. Send an empty list or leave it out.",
            param="integrations",
        )
    if body.method is None:
        return body.hyperparameters
    if body.method.type != "supervised":
        raise InvalidRequest(
            f"method type {body.method.type!r} is not supported; only 'supervised' "
            "fine-tuning (LoRA) is",
            param="method",
        )
    if "hyperparameters" in body.model_fields_set:
        raise InvalidRequest(
            "give the hyperparameters in method.supervised.hyperparameters or at the top "
            "level, not both",
            param="hyperparameters",
        )
    supervised = body.method.supervised
    return supervised.hyperparameters if supervised is not None else Hyperparameters()


@router.post("/v1/fine_tuning/jobs")
def create_job(
    body: FineTuningJobCreate,
    principal: ModelsManagerDep,
    service: FineTuningDep,
    security: SecurityDep,
    tenant: TenantQuery = None,
) -> dict[str, Any]:
    owner = owner_tenant(principal, tenant)
    hyper = hyperparameters(body)
    training = service.file_path(owner, body.training_file, "training_file")
    validation = (
        service.file_path(owner, body.validation_file, "validation_file")
        if body.validation_file
        else None
    )
    name = body.suffix or f"{body.model}-ft".lower().replace(".", "-")
    multiplier = hyper.learning_rate_multiplier
    job = service.create_job(
        owner,
        body.model,
        name,
        training,
        validation,
        train_config(hyper, body.seed),
        created_by=principal.actor,
        merged=body.merged,
        learning_rate_multiplier=multiplier if isinstance(multiplier, float) else None,
        metadata=body.metadata,
    )
    audit(security, "finetune.created", principal, owner, job=job.id, base=job.base_model,
           name=job.name, dataset_sha256=job.dataset_sha256)  # fmt: skip
    return service.public_job(job)


@router.get("/v1/fine_tuning/jobs")
def list_jobs(
    principal: ModelsManagerDep,
    service: FineTuningDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: str | None = None,
    tenant: TenantQuery = None,
) -> dict[str, Any]:
    jobs = service.jobs.list_jobs(principal.scope(tenant), limit + 1, after)
    return {
        "object": "list",
        "data": [service.public_job(j) for j in jobs[:limit]],
        "has_more": len(jobs) > limit,
    }


@router.get("/v1/fine_tuning/jobs/{job_id}")
def get_job(
    job_id: str, principal: ModelsManagerDep, service: FineTuningDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    return service.public_job(service.get_job(principal.scope(tenant), job_id))


@router.post("/v1/fine_tuning/jobs/{job_id}/cancel")
def cancel_job(
    job_id: str,
    principal: ModelsManagerDep,
    service: FineTuningDep,
    security: SecurityDep,
    tenant: TenantQuery = None,
) -> dict[str, Any]:
    job = service.cancel(principal.scope(tenant), job_id)
    audit(security, "finetune.cancelled", principal, job.tenant, job=job.id)
    return service.public_job(job)


@router.get("/v1/fine_tuning/jobs/{job_id}/events")
def job_events(
    job_id: str,
    principal: ModelsManagerDep,
    service: FineTuningDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    after: str | None = None,
    tenant: TenantQuery = None,
) -> dict[str, Any]:
    service.get_job(principal.scope(tenant), job_id)
    cursor = None
    if after is not None:
        if not re.fullmatch(r"(ftevent-)?[0-9]{1,18}", after):
            raise InvalidRequest("after must be an event id (ftevent-N)", param="after")
        cursor = int(after.removeprefix("ftevent-"))
    events = service.jobs.events(job_id, limit + 1, cursor)
    return {"object": "list", "data": events[:limit], "has_more": len(events) > limit}


@router.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
def job_checkpoints(
    job_id: str,
    principal: ModelsManagerDep,
    service: FineTuningDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    after: str | None = None,
    tenant: TenantQuery = None,
) -> dict[str, Any]:
    """One checkpoint per epoch, the last being the final model, newest first; each
    ``fine_tuned_model_checkpoint`` can be passed as ``model`` to serve it."""
    return service.checkpoints(principal.scope(tenant), job_id, limit, after)


# -- registry ------------------------------------------------------------------------------


def _visible(version: dict[str, Any], principal: Principal) -> dict[str, Any]:
    """A version as the caller may see it: where its adapter is stored (a path on the
    server, or the artifact store's address) is for the administrator only."""
    if principal.is_system_admin:
        return version
    return version | {"adapter_uri": None}


@router.get("/admin/registry", tags=["admin"])
def list_registered(
    principal: ModelsManagerDep, settings: SettingsDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    return {"object": "list", "data": Registry(settings).list_models(principal.scope(tenant))}


@router.get("/admin/registry/{name}", tags=["admin"])
def show_registered(
    name: str, principal: ModelsManagerDep, settings: SettingsDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    shown = Registry(settings).show(owner_tenant(principal, tenant), name)
    return shown | {"versions": [_visible(v, principal) for v in shown["versions"]]}


@router.post("/admin/registry/{name}/versions", tags=["admin"])
def import_version(
    name: str,
    principal: ModelsManagerDep,
    settings: SettingsDep,
    security: SecurityDep,
    adapter: Annotated[UploadFile, File(description="A GGUF LoRA adapter.")],
    base_model: Annotated[str, Form(description="The catalog model it was trained on.")],
    tenant: TenantQuery = None,
) -> dict[str, Any]:
    """Register an adapter trained elsewhere as the next version of NAME; a corrupt or
    mismatched file is refused (400 invalid_adapter) and nothing is registered."""
    owner = owner_tenant(principal, tenant)
    folder = settings.data_dir / "registry" / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        # The caller's file name, kept as lineage, is only a name: never "..", a path or
        # a hidden file.
        name_of = re.sub(r"[^A-Za-z0-9._-]", "_", Path(adapter.filename or "").name)
        path = Path(tmp) / (name_of.lstrip(".") or "adapter.gguf")
        with path.open("wb") as out:
            shutil.copyfileobj(adapter.file, out)
        version = Registry(settings).import_adapter(owner, name, path, base_model)
    audit(security, "model.registered", principal, owner, name=name, version=version.version,
           base=base_model)  # fmt: skip
    return _visible(version.public(), principal)


@router.put("/admin/registry/{name}/aliases/{alias}", tags=["admin"])
def set_alias(
    name: str,
    alias: str,
    body: AliasSet,
    principal: ModelsManagerDep,
    settings: SettingsDep,
    security: SecurityDep,
    gateway: GatewayDep,
    tenant: TenantQuery = None,
) -> dict[str, Any]:
    owner = owner_tenant(principal, tenant)
    version = Registry(settings).set_alias(owner, name, alias, body.version)
    gateway.adapters.forget()
    audit(security, "model.alias_set", principal, owner, name=name, alias=alias,
           version=body.version)  # fmt: skip
    return _visible(version.public(), principal)


@router.delete("/admin/registry/{name}/aliases/{alias}", tags=["admin"])
def delete_alias(
    name: str,
    alias: str,
    principal: ModelsManagerDep,
    settings: SettingsDep,
    security: SecurityDep,
    gateway: GatewayDep,
    tenant: TenantQuery = None,
) -> dict[str, Any]:
    owner = owner_tenant(principal, tenant)
    Registry(settings).delete_alias(owner, name, alias)
    gateway.adapters.forget()
    audit(security, "model.alias_deleted", principal, owner, name=name, alias=alias)
    return {"name": name, "alias": alias, "deleted": True}


@router.delete("/admin/registry/{name}/versions/{version}", tags=["admin"])
def delete_version(
    name: str,
    version: int,
    principal: ModelsManagerDep,
    settings: SettingsDep,
    security: SecurityDep,
    gateway: GatewayDep,
    tenant: TenantQuery = None,
    force: Annotated[bool, Query(description="Also delete the aliases that point at it.")] = False,
) -> dict[str, Any]:
    """Remove one version (400 version_in_use while an alias points at it, unless force).
    Requests already running on it finish; new ones get 404."""
    owner = owner_tenant(principal, tenant)
    deleted = Registry(settings).delete_version(owner, name, version, force)
    gateway.adapters.forget()
    audit(security, "model.version_deleted", principal, owner, name=name, version=version,
          aliases=list(deleted.aliases))  # fmt: skip
    return {"name": name, "version": version, "deleted": True, "aliases": list(deleted.aliases)}


@router.delete("/admin/registry/{name}", tags=["admin"])
def delete_registered(
    name: str,
    principal: ModelsManagerDep,
    settings: SettingsDep,
    security: SecurityDep,
    gateway: GatewayDep,
    tenant: TenantQuery = None,
    force: Annotated[bool, Query(description="Delete even while aliases exist.")] = False,
) -> dict[str, Any]:
    """Remove a registered model with all its versions (400 model_in_use while it has
    aliases, unless force). Registered again, the name starts at version 1."""
    owner = owner_tenant(principal, tenant)
    versions = Registry(settings).delete_model(owner, name, force)
    gateway.adapters.forget()
    audit(security, "model.deleted", principal, owner, name=name, versions=versions)
    return {"name": name, "deleted": True, "versions": versions}
