"""The command-line face: thin typer commands over the core (see copa.cli.main)."""
