"""The `dynface` command line: one module per command (`register` adds its parser, `cmd_*` runs it);
`flags` holds what they share, `guard` what every command runs inside, `main` the entry point."""
from dynface.cli.main import main

__all__ = ["main"]
