"""The model registry: fine-tuned versions, their lineage and aliases, with MLflow's model
registry underneath.

This module owns naming, registration and resolution:

* Names belong to a tenant. ``support-bot`` of tenant ``acme`` is the MLflow registered
  model ``acme.support-bot`` (tagged with the tenant and the short name), so two tenants
  may both have a ``support-bot`` and never see each other's. Models of the ``system``
  tenant are the installation's, usable by every tenant.
* ``register`` checks the adapter against its base (``training.export.check``), uploads it
  as an artifact of the job's run and only then creates the version, so a failure at any
  point leaves no version behind, and a version, once it exists, is complete.
* ``resolve("support-bot@champion")`` or ``resolve("support-bot:3")`` is what serving
  calls; it returns the version and a local path to its GGUF adapter (artifacts on a
  remote store are downloaded once into the data directory).

MLflow calls are blocking; the server runs them in its thread pool.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from genaiops.config import Settings
from genaiops.errors import InvalidRequest, NotFound
from genaiops.registry.locking import RegistryLock
from genaiops.security.keys import _TENANT_RE
from genaiops.security.principal import SYSTEM_TENANT
from genaiops.training.tracking import quiet_mlflow

if TYPE_CHECKING:
    from mlflow.exceptions import MlflowException

_PAGE = 500  # registered models per MLflow search page
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
# MLflow reserves these for version references; "latest" is reserved too.
VERSION_LIKE = re.compile(r"^[vV][0-9]+$")
REF = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9_-]{0,62})(?:@(?P<alias>[a-z][a-z0-9_-]{0,62})|:(?P<version>[0-9]{1,9}))$"
)


# A fine-tuning job's checkpoint: "ftjob-<id>:ckpt-step-<N>" (OpenAI's
# fine_tuned_model_checkpoint), served like a version without being registered.
CHECKPOINT = re.compile(r"^(?P<job>ftjob-[0-9a-f]{1,64}):ckpt-step-(?P<step>[0-9]{1,9})$")


def checkpoint_reference(job_id: str, step: int) -> str:
    return f"{job_id}:ckpt-step-{step}"


def _mlflow_error() -> type[MlflowException]:
    """MLflow's exception class, imported only after its telemetry is switched off."""
    quiet_mlflow()
    from mlflow.exceptions import MlflowException

    return MlflowException


def is_reference(model: str) -> bool:
    """True for "name@alias", "name:version" and a job's "ftjob-…:ckpt-step-N", the forms
    served from fine-tuning results rather than the catalog."""
    return REF.match(model) is not None or CHECKPOINT.match(model) is not None


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise InvalidRequest(
            f"invalid model name {name!r}: lowercase letters, digits, '-' and '_', "
            "at most 63 characters",
            param="name",
        )
    return name


@dataclass(frozen=True)
class Version:
    tenant: str
    name: str
    version: int
    base_model: str
    adapter_uri: str
    run_id: str | None
    aliases: tuple[str, ...]
    tags: dict[str, str] = field(default_factory=dict)
    created_at: int = 0
    reference: str = ""  # how a job checkpoint (not a registered version) is named

    @property
    def model_id(self) -> str:
        return self.reference or f"{self.name}:{self.version}"

    @property
    def revision(self) -> str:
        """The version number and the run that produced it: a model deleted and registered
        again starts its numbers over, so "support-bot:1" alone may name two adapters in
        time; the run tells them apart."""
        return f"{self.version}-{self.run_id or self.created_at}"

    @property
    def identity(self) -> str:
        """Names this version and no other, ever (the key of loaded models)."""
        return f"{self.tenant}.{self.name}:{self.revision}"

    def public(self) -> dict[str, Any]:
        metrics = {k.removeprefix("metric."): _number(v) for k, v in self.tags.items()
                   if k.startswith("metric.")}  # fmt: skip
        lineage = {k: v for k, v in self.tags.items() if not k.startswith("metric.")}
        return {
            "name": self.name,
            "version": self.version,
            "model": self.model_id,
            "tenant": self.tenant,
            "base_model": self.base_model,
            "aliases": list(self.aliases),
            "run_id": self.run_id,
            "adapter_uri": self.adapter_uri,
            "created_at": self.created_at,
            "lineage": lineage,
            "metrics": metrics,
        }


def _number(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value


class Registry:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._client: Any = None
        self._jobs: Any = None  # the job store, for checkpoints
        # Changes that check the registry before they write run one at a time across
        # every process of the installation (locking.py).
        self._writing = RegistryLock(settings)

    @property
    def client(self) -> Any:
        if self._client is None:
            from genaiops.training.tracking import client

            self._client = client(self.settings.mlflow_uri())
        return self._client

    @staticmethod
    def qualified(tenant: str, name: str) -> str:
        return f"{tenant}.{name}"

    # -- writing ---------------------------------------------------------------------------

    def register(
        self,
        tenant: str,
        name: str,
        adapter_uri: str,
        run_id: str | None,
        base_model: str,
        tags: dict[str, str],
        description: str = "",
    ) -> Version:
        """Create a version. A version tagged with a ``job_id`` is created once per job:
        a job resumed after registering (its worker killed before it recorded the result)
        gets the version it registered before."""
        MlflowException = _mlflow_error()

        with self._writing:
            check_name(name)
            full = self.qualified(tenant, name)
            job_id = tags.get("job_id")
            if job_id:
                existing = self._job_version(full, job_id)
                if existing is not None:
                    return self._version(tenant, name, existing)
            try:
                self.client.create_registered_model(
                    full, tags={"tenant": tenant, "name": name}, description=description
                )
            except MlflowException as exc:
                if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                    raise
            try:
                mv = self.client.create_model_version(
                    full,
                    source=adapter_uri,
                    run_id=run_id,
                    tags={"base_model": base_model, **tags},
                    description=description,
                )
            except Exception:
                # A model whose first version failed would be listed with nothing to serve.
                with contextlib.suppress(Exception):
                    if not self.client.search_model_versions(f"name = '{full}'"):
                        self.client.delete_registered_model(full)
                raise
            return self._version(tenant, name, mv)

    def _job_version(self, full: str, job_id: str) -> Any:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", job_id):
            return None  # not one of ours; never spliced into a filter
        found = self.client.search_model_versions(f"name = '{full}' and tags.job_id = '{job_id}'")
        return min(found, key=lambda mv: int(mv.version)) if found else None

    def import_adapter(
        self, tenant: str, name: str, adapter: Path, base_model: str, description: str = ""
    ) -> Version:
        """Register a GGUF LoRA adapter trained elsewhere. It is checked against the base
        first; a corrupt or mismatched file is refused and nothing is registered."""
        from genaiops.training import base as bases
        from genaiops.training.data import file_sha256
        from genaiops.training.export import check
        from genaiops.training.tracking import Tracker

        check_name(name)
        base = bases.resolve(self.settings, base_model)
        info = check(adapter, base.gguf_path)
        tracker = Tracker(self.settings)
        run_id = tracker.start(f"import {name}", {"genaiops.import": adapter.name})
        try:
            uri = tracker.artifact(run_id, adapter, "adapter")
        except Exception:
            tracker.end(run_id, "failed")
            raise
        tracker.end(run_id, "succeeded")
        tags = {"imported_from": adapter.name, "adapter_sha256": file_sha256(adapter),
                "lora_rank": str(info.rank), "lora_alpha": f"{info.alpha:g}"}  # fmt: skip
        return self.register(tenant, name, uri, run_id, base.name, tags, description)

    def set_alias(self, tenant: str, name: str, alias: str, version: int) -> Version:
        with self._writing:
            if not ALIAS.match(alias) or alias == "latest":
                raise InvalidRequest(f"invalid alias {alias!r}", param="alias")
            if VERSION_LIKE.match(alias):
                raise InvalidRequest(
                    f"alias {alias!r} is reserved: names like v1, v2... refer to versions",
                    param="alias",
                )
            self.get(tenant, name, version)  # 404 for an unknown version
            self.client.set_registered_model_alias(
                self.qualified(tenant, name), alias, str(version)
            )
            return self.get(tenant, name, version)

    def delete_alias(self, tenant: str, name: str, alias: str) -> None:
        with self._writing:
            MlflowException = _mlflow_error()

            # MLflow deletes a missing alias without complaint: check first, so a typo is a 404
            # (and no "deleted" audit record) rather than a silent success.
            if alias not in self.show(tenant, name)["aliases"]:
                raise NotFound(f"model {name!r} has no alias {alias!r}", param="alias")
            try:
                self.client.delete_registered_model_alias(self.qualified(tenant, name), alias)
            except MlflowException as exc:
                raise NotFound(f"model {name!r} has no alias {alias!r}", param="alias") from exc

    def delete_version(self, tenant: str, name: str, version: int, force: bool = False) -> Version:
        """Remove one version from the registry. A version an alias points at is refused
        unless ``force`` (which removes those aliases with it), so deleting never silently
        changes what ``name@alias`` serves. The version's run and its artifacts stay in the
        tracking store as experiment history; MLflow never reuses the number. The
        checkpoints of the job that registered it are no longer served either."""
        with self._writing:
            found = self.get(tenant, name, version)
            if found.aliases and not force:
                raise InvalidRequest(
                    f"version {version} of {name!r} is served as "
                    f"{', '.join(f'{name}@{a}' for a in found.aliases)}; move or delete the "
                    "alias first, or delete with force",
                    param="version",
                    code="version_in_use",
                )
            self.client.delete_model_version(self.qualified(tenant, name), str(version))
            shutil.rmtree(self._cache_dir(found), ignore_errors=True)
            return found

    def delete_model(self, tenant: str, name: str, force: bool = False) -> list[int]:
        """Remove a registered model and every version of it; the numbers of the versions
        deleted. Refused while aliases exist unless ``force``. A model registered again
        under the name starts at version 1."""
        with self._writing:
            shown = self.show(tenant, name)
            if shown["aliases"] and not force:
                served = ", ".join(f"{name}@{a}" for a in sorted(shown["aliases"]))
                raise InvalidRequest(
                    f"model {name!r} is served as {served}; delete the aliases first, "
                    "or delete with force",
                    param="name",
                    code="model_in_use",
                )
            self.client.delete_registered_model(self.qualified(tenant, name))
            shutil.rmtree(self._model_dir(tenant, name), ignore_errors=True)
            return [int(v["version"]) for v in shown["versions"]]

    # -- reading ---------------------------------------------------------------------------

    def list_models(self, tenant: str | None) -> list[dict[str, Any]]:
        """Registered models of ``tenant`` (None: every tenant), newest version first."""
        if tenant is not None and not _TENANT_RE.fullmatch(tenant):
            raise InvalidRequest(f"invalid tenant {tenant!r}", param="tenant")
        query = f"tags.tenant = '{tenant}'" if tenant is not None else ""
        out = []
        for rm in self._all_registered(query or None):
            tags = dict(rm.tags or {})
            if "tenant" not in tags:
                continue
            latest = max((int(v.version) for v in rm.latest_versions or []), default=0)
            if not latest and not rm.aliases:
                # Its first version never came (the process was killed between the two
                # MLflow calls of register): nothing to serve, nothing to list.
                continue
            out.append(
                {
                    "name": tags.get("name", rm.name),
                    "tenant": tags["tenant"],
                    "latest_version": latest or None,
                    "aliases": {a: int(v) for a, v in (rm.aliases or {}).items()},
                    "description": rm.description or "",
                }
            )
        return sorted(out, key=lambda m: (m["tenant"], m["name"]))

    def _all_registered(self, query: str | None) -> Iterator[Any]:
        """Every registered model ``query`` matches, page by page (MLflow answers 100 at a
        time)."""
        token = None
        while True:
            page = self.client.search_registered_models(
                filter_string=query, max_results=_PAGE, page_token=token
            )
            yield from page
            token = page.token
            if not token:
                return

    def show(self, tenant: str, name: str) -> dict[str, Any]:
        full = self.qualified(tenant, check_name(name))
        rm = self._registered(full, name)
        versions = self.client.search_model_versions(f"name = '{full}'")
        aliases = {a: int(v) for a, v in (rm.aliases or {}).items()}
        # A searched version does not carry its aliases (MLflow fills them on a get only).
        named: dict[int, list[str]] = {}
        for alias, number in aliases.items():
            named.setdefault(number, []).append(alias)
        return {
            "name": name,
            "tenant": tenant,
            "aliases": aliases,
            "description": rm.description or "",
            "versions": sorted(
                (
                    self._version(tenant, name, mv, named.get(int(mv.version), [])).public()
                    for mv in versions
                ),
                key=lambda v: -int(v["version"]),
            ),
        }

    def get(self, tenant: str, name: str, version: int) -> Version:
        MlflowException = _mlflow_error()

        full = self.qualified(tenant, check_name(name))
        self._registered(full, name)
        try:
            mv = self.client.get_model_version(full, str(version))
        except MlflowException as exc:
            raise NotFound(f"model {name!r} has no version {version}", param="model") from exc
        return self._version(tenant, name, mv)

    def resolve(self, tenant: str, reference: str) -> Version:
        """The version "name@alias" or "name:version" names: of the caller's tenant's model
        of that name, or, when the tenant has none, of the installation's (system) one; or
        the checkpoint of one of the caller's own fine-tuning jobs."""
        if CHECKPOINT.match(reference):
            return self._checkpoint(tenant, reference)
        m = REF.match(reference)
        if m is None:
            raise InvalidRequest(f"not a registry reference: {reference!r}", param="model")
        # The name decides whose model it is, not the reference: a tenant that has its own
        # "bot" never gets the installation's bot:4 or bot@live, whatever its own lacks.
        owner = tenant
        if tenant != SYSTEM_TENANT:
            try:
                self._registered(self.qualified(tenant, m["name"]), m["name"])
            except NotFound:
                owner = SYSTEM_TENANT
        return self._resolve_in(owner, m["name"], m["alias"], m["version"])

    def _resolve_in(
        self, tenant: str, name: str, alias: str | None, version: str | None
    ) -> Version:
        MlflowException = _mlflow_error()

        full = self.qualified(tenant, name)
        if version is not None:
            return self.get(tenant, name, int(version))
        self._registered(full, name)
        try:
            mv = self.client.get_model_version_by_alias(full, alias)
        except MlflowException as exc:
            raise NotFound(f"model {name!r} has no alias {alias!r}", param="model") from exc
        return self._version(tenant, name, mv)

    def _checkpoint(self, tenant: str, reference: str) -> Version:
        from genaiops.storage.db import Database
        from genaiops.training.jobs import JobStore

        m = CHECKPOINT.match(reference)
        assert m is not None
        if self._jobs is None:
            self._jobs = JobStore(Database(self.settings.database_url()))
        job = self._jobs.get(m["job"], tenant)
        step = int(m["step"])
        found = [c for c in self._jobs.checkpoints(job.id) if c["step"] == step] if job else []
        if job is None or not found:
            raise NotFound(f"no checkpoint {reference!r}", param="model")
        if job.fine_tuned_model is not None and (
            self._job_version(self.qualified(job.tenant, job.name), job.id) is None
        ):
            # The job's registered version was deleted: its checkpoints go with it.
            raise NotFound(
                f"no checkpoint {reference!r}: the version its job registered was deleted",
                param="model",
            )
        c = found[0]
        return Version(tenant=job.tenant, name=job.id, version=step, base_model=job.base_model,
                       adapter_uri=str(c["uri"]), run_id=job.run_id, aliases=(),
                       tags={"chat_template": str(c.get("chat_template") or "")},
                       created_at=int(c["created_at"]), reference=reference)  # fmt: skip

    def local_adapter(self, version: Version) -> Path:
        """A local path to the version's GGUF adapter (downloaded once if remote)."""
        return self.local_artifact(version, version.adapter_uri)

    def local_artifact(self, version: Version, uri: str) -> Path:
        """A local path to one of the version's artifacts (a file or a folder), downloaded
        once into the data directory when the artifact store is remote."""
        parsed = urlparse(uri)
        if parsed.scheme in ("", "file"):
            return Path(unquote(parsed.path) if parsed.scheme else uri)
        cache = self._cache_dir(version) / Path(parsed.path).name
        if not cache.exists():
            quiet_mlflow()
            import mlflow.artifacts

            # A folder of its own: replicas sharing the data directory may download the
            # same version at once, and none may remove or move another's partial copy.
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{cache.name}-", dir=cache.parent))
            try:
                got = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp)))
                try:
                    os.rename(got, cache)
                except OSError:
                    if not cache.exists():  # not another download finished first
                        raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return cache

    # -- helpers ---------------------------------------------------------------------------

    def _model_dir(self, tenant: str, name: str) -> Path:
        """Where remote artifacts of a model's versions are downloaded."""
        return self.settings.data_dir / "registry" / tenant / name

    def _cache_dir(self, version: Version) -> Path:
        """One folder per revision of a version under its model's."""
        return self._model_dir(version.tenant, version.name) / version.revision

    def _registered(self, full: str, name: str) -> Any:
        MlflowException = _mlflow_error()

        try:
            return self.client.get_registered_model(full)
        except MlflowException as exc:
            raise NotFound(f"no registered model {name!r}", param="model") from exc

    def _version(
        self, tenant: str, name: str, mv: Any, aliases: list[str] | None = None
    ) -> Version:
        tags = dict(mv.tags or {})
        return Version(
            tenant=tenant,
            name=name,
            version=int(mv.version),
            base_model=tags.get("base_model", ""),
            adapter_uri=str(mv.source),
            run_id=mv.run_id,
            aliases=tuple(sorted(mv.aliases or aliases or ())),
            tags=tags,
            created_at=int(mv.creation_timestamp or 0) // 1000,
        )
