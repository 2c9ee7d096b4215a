"""Command-line face of genaiops (Typer). One module per capability; no business logic."""
