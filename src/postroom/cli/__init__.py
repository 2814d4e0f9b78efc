"""The command-line interface (Typer + Rich): ``serve`` and local administration commands."""
