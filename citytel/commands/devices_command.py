"""Not yet available."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Nothing to register yet: a command that does nothing is not listed."""
