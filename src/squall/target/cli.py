"""``squall target``: run the reference platform and mint its tokens."""

from __future__ import annotations

import typer

app = typer.Typer(help="The reference agent platform.", no_args_is_help=True)
