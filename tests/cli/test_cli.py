"""The CLI through Typer's runner, with the real bundled models in-process."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genaiops.cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENAIOPS_DATA_DIR", str(tmp_path_factory.getbasetemp() / "cli-data"))
    monkeypatch.delenv("GENAIOPS_CONFIG", raising=False)


def test_models_list_json() -> None:
    result = runner.invoke(app, ["models", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["smollm2-135m-instruct"]["default"] is True
    assert rows["gemma3-270m"]["chat"] is False


def test_models_list_table() -> None:
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0
    assert "smollm2-135m-instruct" in result.stdout


def test_models_tokenize_and_detokenize() -> None:
    """The ids of a text, the chat template's included with --chat; the count is what
    ``chat --json`` reports as prompt tokens, and detokenize gives the text back."""
    text = "¿Cuánto cuesta el envío a Belo Horizonte?"
    result = runner.invoke(app, ["models", "tokenize", text, "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["count"] == len(body["tokens"]) == len(body["token_strs"]) > 5
    back = runner.invoke(app, ["models", "detokenize", *map(str, body["tokens"])])
    assert back.exit_code == 0 and back.stdout == text + "\n"
    chat = runner.invoke(app, ["models", "tokenize", text, "--chat", "--json"])
    answer = runner.invoke(app, ["chat", text, "--json", "--max-tokens", "1"])
    prompt_tokens = json.loads(answer.stdout.strip().splitlines()[-1])["usage"]["prompt_tokens"]
    assert json.loads(chat.stdout)["count"] == prompt_tokens > body["count"]
    table = runner.invoke(app, ["models", "tokenize", "hola", "-m", "gemma3-270m"])
    assert table.exit_code == 0 and "<bos>" in table.stdout
    bad = runner.invoke(app, ["models", "detokenize", "1", "99999999"])
    assert bad.exit_code == 2 and "does not have" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_chat_one_shot_json() -> None:
    result = runner.invoke(
        app, ["chat", "What is 2+2?", "--json", "--max-tokens", "8", "--temperature", "0"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout.strip().splitlines()[-1])
    assert body["text"]
    assert 0 < body["usage"]["completion_tokens"] <= 8
    assert body["usage"]["prompt_tokens"] > 5


def test_chat_streams_plain_text() -> None:
    result = runner.invoke(app, ["chat", "Say hello", "--max-tokens", "6", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip()


def test_chat_interactive_json_prints_one_object_per_answer() -> None:
    result = runner.invoke(
        app, ["chat", "--json", "--max-tokens", "4", "--temperature", "0"], input="Hi\nAgain\n\n"
    )
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(answers) == 2 and all(a["usage"]["completion_tokens"] > 0 for a in answers)
    # The second turn carries the first one: its prompt is longer.
    assert answers[1]["usage"]["prompt_tokens"] > answers[0]["usage"]["prompt_tokens"]


def test_chat_interactive_keeps_history() -> None:
    result = runner.invoke(
        app, ["chat", "--max-tokens", "6", "--temperature", "0"], input="Hi\nAnd again\n\n"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.count("> ") >= 2


def test_generate_with_base_model() -> None:
    result = runner.invoke(
        app,
        [
            "generate",
            "El río más largo de Sudamérica es",
            "--model",
            "gemma3-270m",
            "--max-tokens",
            "10",
            "--temperature",
            "0",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["text"] and body["model"] == "gemma3-270m"
    assert body["usage"]["completion_tokens"] <= 10


def test_unknown_model_is_one_line_and_exit_2() -> None:
    result = runner.invoke(app, ["chat", "hi", "--model", "nope"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nope" in lines[0]


def test_chat_on_base_model_is_clear_error() -> None:
    result = runner.invoke(app, ["chat", "hola", "--model", "gemma3-270m"])
    assert result.exit_code == 2
    assert "no chat template" in result.stderr


def test_bad_config_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[server]\nport = -1\n")
    result = runner.invoke(app, ["models", "list", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "server.port" in result.stderr


def test_serve_on_a_port_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", "--port", str(port)])
    assert result.exit_code == 1
    assert (
        result.stderr.strip() == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def test_context_overflow_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "small.toml"
    cfg.write_text(
        'bundled_models = []\ndefault_model = "tiny"\n[[models]]\nname = "tiny"\n'
        'bundled = "smollm2"\ncontext_length = 64\n'
    )
    result = runner.invoke(app, ["generate", "word " * 200, "--config", str(cfg)])
    assert result.exit_code == 2
    assert "maximum context length is 64" in result.stderr


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "x", "--top-k", "0"], "Invalid value for '--top-k'"),
        (["search", "x", "--top-k", "abc"], "Invalid value for '--top-k'"),
        (["nosuch"], "No such command 'nosuch'"),
        (["models", "list", "--bogus"], "No such option: --bogus"),
        (["generate"], "Missing argument 'prompt'"),
    ],
)
def test_usage_mistakes_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    """Through the console script: a mistake in the command line is one line on stderr
    (not a box of help) and exit code 2."""
    from tests.conftest import genaiops_cli

    result = genaiops_cli(*args, data_dir=tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("error: " + message)
    assert len(result.stderr.strip().splitlines()) == 1 and "--help" in result.stderr


def test_ctrl_c_at_the_chat_prompt_ends_the_session(tmp_path: Path) -> None:
    """Interrupting the interactive chat while it waits for a line exits at once (130),
    without waiting for Enter."""
    import os
    import pty
    import signal
    import sys
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI on a terminal
        os.environ["GENAIOPS_DATA_DIR"] = str(tmp_path / "data")
        os.execv(sys.executable, [sys.executable, "-m", "genaiops", "chat", "--max-tokens", "4"])
    seen, started = b"", time.monotonic()
    while b"> " not in seen and time.monotonic() - started < 120:
        try:
            seen += os.read(fd, 1024)
        except OSError:
            break
    assert b"> " in seen, seen
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 130
            os.close(fd)
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("the chat session did not end on Ctrl-C")
