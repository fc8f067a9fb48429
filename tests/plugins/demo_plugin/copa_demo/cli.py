import typer

app = typer.Typer()


@app.callback()
def demo() -> None:
    """The demo plugin's own commands."""


@app.command()
def hello(name: str = "world") -> None:
    """Say hello."""
    print(f"demo says hello to {name}")
