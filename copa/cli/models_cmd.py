"""`copa models`: the models copa can use (configured and found in the environment), adding one,
and testing one with a tiny request."""

from __future__ import annotations

import typer

from copa.cli.output import emit_json, print_table, workstation

app = typer.Typer(help="List, add and test the models copa can use.", no_args_is_help=True)


def _key_state(ws, spec) -> str:
    import os

    if not spec.key:
        return "none needed"
    if os.environ.get(spec.key):
        return f"{spec.key} (env)"
    try:
        if spec.key in ws.secrets.names():
            return f"{spec.key} (stored)"
    except Exception:  # a locked store must not break the listing
        return f"{spec.key} (store locked)"
    return f"{spec.key} MISSING" if not spec.base_url else f"{spec.key} (not set)"


@app.command("list")
def list_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show every usable model: [models.NAME] entries and zero-config ones from the environment."""
    ws = workstation(interactive=False)
    models = ws.models
    default, fast = models.default_name(), models.fast_name()
    fallback = ws.config.get("agent.fallback")
    rows = []
    for name, spec in models.registry.all().items():
        roles = [r for r, on in (("default", name == default), ("fast", name == fast),
                                 ("fallback", name in fallback)) if on]
        rows.append({**spec.as_dict(), "roles": roles, "key_state": _key_state(ws, spec),
                     "context_window": spec.window()})
    if json_out:
        emit_json({"default": default, "fast": fast, "fallback": fallback, "models": rows})
        return
    if not rows:
        from copa.providers import CONFIGURE_HINT

        print(f"no models: {CONFIGURE_HINT}")
        return
    print_table(((r["name"], r["provider"], r["model"] or "(server's first)", r["base_url"] or "(public API)",
                  r["key_state"], ",".join(r["roles"]), r["source"]) for r in rows),
                ["name", "provider", "model", "base url", "key", "role", "from"])


@app.command("add")
def add_cmd(
    name: str = typer.Argument(..., help="The name you will use: copa ask --model NAME"),
    provider: str = typer.Option("openai", "--provider", "-p", help="openai, anthropic, gemini or ollama"),
    model: str = typer.Option(None, "--model", "-m", help="The model's name at the provider (default: NAME)"),
    base_url: str = typer.Option(None, "--base-url", help="API base URL (e.g. http://127.0.0.1:8080/v1)"),
    key: str = typer.Option(None, "--key", help="Name of the secret holding the API key (copa secrets set NAME)"),
    context_window: int = typer.Option(None, "--context-window", help="Context window in tokens"),
    price_in: float = typer.Option(None, "--price-in", help="Price per input token"),
    price_out: float = typer.Option(None, "--price-out", help="Price per output token"),
    tool_mode: str = typer.Option(None, "--tool-mode", help="native, or prompt for models without tool calling"),
    max_tokens: int = typer.Option(None, "--max-tokens", help="Longest answer in tokens"),
    stream: bool = typer.Option(None, "--stream/--no-stream",
                                help="Stream answers (default), or send plain requests to this model"),
    default: bool = typer.Option(False, "--default", help="Make it the default model (agent.model)"),
    fast: bool = typer.Option(False, "--fast", help="Use it for internal work (agent.fast_model)"),
) -> None:
    """Add (or change) [models.NAME] in the config; every value is checked before anything is written."""
    import re

    from copa.config import coerce, lookup, set_value
    from copa.errors import UsageError
    from copa.paths import Paths

    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise UsageError(f"invalid model name {name!r}", hint="use letters, digits, '_' or '-'")
    values = {"provider": provider, "model": model or name, "base_url": base_url, "key": key,
              "context_window": context_window, "price_in": price_in, "price_out": price_out,
              "tool_mode": tool_mode, "max_tokens": max_tokens, "stream": stream}
    values = {k: v for k, v in values.items() if v is not None}
    for field, value in values.items():  # validate all first: no half-written entry
        coerce(f"models.{name}.{field}", lookup(f"models.{name}.{field}"), value, origin="")
    paths = Paths.from_env()
    for field, value in values.items():
        set_value(paths, f"models.{name}.{field}", value)
    if default:
        set_value(paths, "agent.model", name)
    if fast:
        set_value(paths, "agent.fast_model", name)
    print(f"added model {name} ({values['provider']} {values['model']}); try it: copa models test {name}")


@app.command("test")
def test_cmd(name: str = typer.Argument(None, help="The model to test (default: the default model)"),
             no_stream: bool = typer.Option(False, "--no-stream", help="Send a plain (non-streaming) request."),
             json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Send one small request (no retries, no fallback): time to the first token, tokens/s, the window."""
    from copa.errors import ConfigError
    from copa.providers import CONFIGURE_HINT

    ws = workstation(interactive=False)
    try:
        name = name or ws.models.default_name()
        if not name:
            raise ConfigError("no model is configured", hint=CONFIGURE_HINT)
        if no_stream:
            ws.models.stream = False
        report = ws.models.test(name)
    finally:
        ws.close()
    if json_out:
        emit_json(report)
    else:
        first = f", first token {report['first_token_ms']:.0f} ms" if report["first_token_ms"] is not None else ""
        rate = f", {report['tokens_per_s']:.0f} tokens/s" if report["tokens_per_s"] is not None else ""
        if rate and report["usage"]["estimated"]:
            rate += " (tokens estimated: the server stated none)"
        print(f"{'ok' if report['ok'] else 'FAILED'}  {name}: {report['latency_ms']:.0f} ms{first}{rate}, "
              f"window {report['context_window']} tokens ({report['context_window_from']}), "
              f"answer {report['answer'][:60]!r}" + (f" ({report['error']})" if report["error"] else ""))
    if not report["ok"]:
        from copa.errors import ExitCode

        raise typer.Exit(ExitCode.PROVIDER)


@app.command("remove")
def remove_cmd(name: str = typer.Argument(..., help="The [models.NAME] entry to remove")) -> None:
    """Remove [models.NAME] from the config, and any role (default, fast, fallback) that named it."""
    import tomli_w

    from copa.config import read_file, validate
    from copa.errors import NotFoundError
    from copa.paths import Paths, atomic_write

    paths = Paths.from_env()
    data = read_file(paths.config_file)
    if name not in (data.get("models") or {}):
        raise NotFoundError(f"no [models.{name}] in {paths.config_file}",
                            hint="see 'copa models list' (models from the environment cannot be removed)")
    del data["models"][name]
    if not data["models"]:
        del data["models"]
    agent = data.get("agent") or {}
    changed = []
    for key in ("model", "fast_model"):
        if agent.get(key) == name:
            del agent[key]
            changed.append(f"agent.{key}")
    if name in agent.get("fallback", []):
        agent["fallback"] = [n for n in agent["fallback"] if n != name]
        changed.append("agent.fallback")
    validate(data, paths.config_file)
    atomic_write(paths.config_file, tomli_w.dumps(data).encode(), mode=0o600)
    print(f"removed model {name}" + (f" (and from {', '.join(changed)})" if changed else ""))
