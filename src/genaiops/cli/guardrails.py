"""genaiops guardrails check / train."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from genaiops.cli.common import ConfigOption, cli_errors, command_group, settings_from, write
from genaiops.cli.keys import JsonOption
from genaiops.errors import InvalidRequest

app = command_group(
    "Check texts with the guardrails; retrain the injection classifier.", no_args_is_help=False
)


@app.command("check")
def check(
    text: Annotated[str, typer.Argument(help="Text to check; '-' reads standard input.")],
    guard: Annotated[
        list[str] | None, typer.Option("--guard", "-g", help="Guard to run; repeatable.")
    ] = None,
    stage: Annotated[str, typer.Option(help="Policy to apply: input, context, output.")] = "input",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run guards over a text. Exit status: 0 clean, 1 flagged (like grep), 2 bad input."""
    from genaiops.guardrails.service import GuardrailsService

    with cli_errors():
        if stage not in ("input", "context", "output"):
            raise InvalidRequest("--stage must be input, context or output", param="stage")
        if text == "-":
            text = sys.stdin.read()
        service = GuardrailsService(settings_from(config).guardrails)
        outcome = service.check(text, stage=stage, guards=guard)  # type: ignore[arg-type]
    if as_json:
        write(json.dumps(outcome.public(), ensure_ascii=False, indent=2) + "\n")
    else:
        console = Console()
        for result in outcome.results:
            mark = "[red]flagged[/red]" if result.flagged else "[green]ok[/green]"
            console.print(
                f"{result.guard:18} {mark}  score {result.score:.2f}  "
                f"{result.latency_ms:.2f} ms  {escape(result.reason or '')}"
            )
            for span in result.spans:
                console.print(
                    f"{'':18} {span.kind} [{span.start}:{span.end}] {span.text!r}", markup=False
                )
        console.print(f"action: {outcome.action or 'none'}")
        if outcome.action == "redact":
            console.print(f"redacted: {outcome.text}", markup=False)
    if outcome.flagged:
        raise typer.Exit(1)


@app.command("train")
def train(
    dataset: Annotated[
        Path | None, typer.Option(help="JSONL with text, label, lang, split (default: bundled).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Where to write the model (default: the bundled one).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Retrain the prompt-injection classifier and report its held-out metrics."""
    from genaiops.guardrails.injection.classifier import train_cli

    with cli_errors():
        metrics = train_cli(dataset, output)
    if as_json:
        write(json.dumps(metrics, indent=2) + "\n")
    else:
        for key, value in metrics.items():
            write(f"{key}: {value}\n")
