from __future__ import annotations

from pathlib import Path

import pytest

from genaiops.config import BUNDLED_BASE_MODEL, BUNDLED_CHAT_MODEL, load_settings
from genaiops.errors import ConfigError


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("GENAIOPS_CONFIG", "GENAIOPS_DATA_DIR", "GENAIOPS_SERVER__PORT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_serve_both_bundled_models() -> None:
    s = load_settings()
    assert s.server.host == "127.0.0.1" and s.server.port == 8000
    assert [m.name for m in s.catalog()] == [BUNDLED_CHAT_MODEL, BUNDLED_BASE_MODEL]
    assert s.default_model == BUNDLED_CHAT_MODEL
    assert s.data_dir.name == "genaiops"


def test_toml_then_env_then_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "g.toml"
    cfg.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n[scheduler]\nmax_queue = 3\n')
    assert load_settings(cfg).server.port == 9000
    monkeypatch.setenv("GENAIOPS_SERVER__PORT", "9100")
    s = load_settings(cfg)
    assert (s.server.port, s.server.host, s.scheduler.max_queue) == (9100, "0.0.0.0", 3)
    assert load_settings(cfg, server={"port": 9200}).server.port == 9200


def test_genaiops_toml_in_working_directory_and_env_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "genaiops.toml").write_text('default_model = "gemma3-270m"\n')
    assert load_settings().default_model == "gemma3-270m"
    other = tmp_path / "other.toml"
    other.write_text("[server]\nport = 1234\n")
    monkeypatch.setenv("GENAIOPS_CONFIG", str(other))
    assert load_settings().server.port == 1234


def test_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENAIOPS_DATA_DIR", str(tmp_path / "state"))
    s = load_settings()
    assert s.data_dir == (tmp_path / "state").resolve()
    assert s.models_dir() == s.data_dir / "models"


def test_user_models_extend_and_override_catalog(tmp_path: Path) -> None:
    cfg = tmp_path / "g.toml"
    cfg.write_text(
        'bundled_models = ["smollm2-135m-instruct"]\n'
        '[[models]]\nname = "smollm2-135m-instruct"\nbundled = "smollm2"\n'
        "context_length = 1024\n"
        '[[models]]\nname = "vllm-llama"\nengine = "remote"\n'
        'base_url = "http://vllm:8000/v1"\napi_key_env = "VLLM_KEY"\n'
    )
    catalog = {m.name: m for m in load_settings(cfg).catalog()}
    assert list(catalog) == ["smollm2-135m-instruct", "vllm-llama"]
    assert catalog["smollm2-135m-instruct"].context_length == 1024
    assert catalog["vllm-llama"].engine == "remote"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[server\nport=1", "invalid TOML"),
        ("[server]\nport = 70000\n", "server.port"),
        ('[[models]]\nname = "x"\n', "needs 'path' or 'bundled'"),
        ('[[models]]\nname = "x"\nengine = "remote"\n', "needs 'base_url'"),
        ('bundled_models = ["gpt-5"]\n', "unknown bundled models"),
        (
            '[[models]]\nname = "a"\nbundled = "smollm2"\n[[models]]\nname = "a"\n'
            'bundled = "smollm2"\n',
            "unique",
        ),
        ("colour = 1\n", "colour"),
        ('[guardrails.groundedness]\naction = "block"\n', "groundedness.action"),
        ('default_model = "nope"\n', "default_model 'nope' is not a served model"),
        # A misspelt key inside a table is refused too, not dropped.
        ('[limits]\nbackend = "redis"\nredis_ur = "redis://x:1/0"\n', "limits.redis_ur"),
        ('[[models]]\nname = "x"\npath = "/x.gguf"\ncontext = 1024\n', "models.0.context"),
        ("bundled_models = []\n", "no model to serve"),
        ('[[models]]\nname = "x"\nengine = "lama_cpp"\npath = "/x.gguf"\n', "unknown engine"),
    ],
)
def test_invalid_config_is_one_clear_error(tmp_path: Path, text: str, fragment: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert fragment in err.value.message
    assert "\n" not in err.value.message.strip()


def test_the_default_model_is_one_that_is_served(tmp_path: Path) -> None:
    cfg = tmp_path / "g.toml"
    cfg.write_text(f'bundled_models = ["{BUNDLED_BASE_MODEL}"]\n')
    assert load_settings(cfg).default_model == BUNDLED_BASE_MODEL


def test_a_list_setting_from_the_environment_must_be_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENAIOPS_BUNDLED_MODELS", BUNDLED_CHAT_MODEL)
    with pytest.raises(ConfigError, match="JSON in the environment") as err:
        load_settings()
    assert "\n" not in err.value.message
    monkeypatch.setenv("GENAIOPS_BUNDLED_MODELS", f'["{BUNDLED_CHAT_MODEL}"]')
    assert [m.name for m in load_settings().catalog()] == [BUNDLED_CHAT_MODEL]


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml")


def test_hashed_pii_in_production_needs_a_stable_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "genaiops.toml"
    cfg.write_text('env = "production"\n[guardrails]\npii_mode = "hash"\n')
    monkeypatch.delenv("GENAIOPS_PII_HASH_KEY", raising=False)
    with pytest.raises(ConfigError, match="GENAIOPS_PII_HASH_KEY"):
        load_settings(cfg)
    monkeypatch.setenv("GENAIOPS_PII_HASH_KEY", "a-stable-secret")
    assert load_settings(cfg).guardrails.pii_mode == "hash"
    # Development keeps working without one (a warning says the hashes are per process).
    cfg.write_text('[guardrails]\npii_mode = "hash"\n')
    monkeypatch.delenv("GENAIOPS_PII_HASH_KEY")
    assert load_settings(cfg).env == "development"
