"""Tools of the MCP servers listed under ``[mcp.servers.NAME]``, offered to the agent as skills.

Each server runs as a child process over stdio for as long as copa runs (started on first use). The
official SDK is asynchronous; copa's faces call tools synchronously, so one background thread owns
an event loop and one task per server owns its session (anyio requires a session to be opened and
closed by the same task). Tool names are ``SERVER__TOOL``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import tempfile
import threading
import time
from typing import Any

from copa.tools import ToolResult, ToolSpec


def tool_name(server: str, tool: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", f"{server}__{tool}")
    return name[:64]


class _Server:
    def __init__(self, name: str, params, timeout: float):
        self.name, self.params, self.timeout = name, params, timeout
        self.ready: concurrent.futures.Future = concurrent.futures.Future()
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.errlog = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - the server's stderr, while it runs

    async def run(self) -> None:
        from mcp import ClientSession, stdio_client

        self.queue = asyncio.Queue()
        try:
            async with stdio_client(self.params, errlog=self.errlog) as (read, write), \
                    ClientSession(read, write, read_timeout_seconds=self.timeout) as session:
                await session.initialize()
                tools, cursor = [], None
                for _ in range(50):  # pages
                    from mcp_types import PaginatedRequestParams

                    page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
                    tools += page.tools
                    cursor = page.next_cursor
                    if not cursor:
                        break
                self.ready.set_result(tools)
                while True:
                    item = await self.queue.get()
                    if item is None:
                        break
                    tool, arguments, fut = item
                    try:
                        fut.set_result(await session.call_tool(tool, arguments))
                    except Exception as e:
                        fut.set_exception(e)
        except BaseException as e:  # noqa: BLE001 - reported to whoever waits
            if not self.ready.done():
                self.ready.set_exception(e if isinstance(e, Exception) else RuntimeError(str(e)))
        finally:
            while self.queue is not None and not self.queue.empty():
                item = self.queue.get_nowait()
                if item is not None and not item[2].done():
                    item[2].set_exception(RuntimeError(f"MCP server '{self.name}' stopped"))

    def stderr_tail(self) -> str:
        try:
            self.errlog.seek(0)
            lines = [ln for ln in self.errlog.read().splitlines() if ln.strip()]
            return lines[-1][:300] if lines else ""
        except (OSError, ValueError):
            return ""


class McpTool:
    def __init__(self, owner: McpServers, server: str, tool: Any, dangerous: bool):
        self._owner, self.server, self.tool = owner, server, tool.name
        self.spec = ToolSpec(tool_name(server, tool.name), (tool.description or tool.name)[:1024],
                             dict(tool.input_schema or {"type": "object", "properties": {}}),
                             dangerous=dangerous, source=f"mcp:{server}")

    def call(self, arguments: dict[str, Any]) -> ToolResult:
        return self._owner.call_tool(self.server, self.tool, arguments)


class McpServers:
    """The configured MCP servers, started lazily, stopped by ``close()``."""

    def __init__(self, config: Any, secrets: Any):
        self._config, self.secrets = config, secrets  # config: the [mcp.servers] table; secrets: env for them
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: dict[str, _Server] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()

    def config(self) -> dict[str, dict[str, Any]]:
        if self._config is None:
            return {}
        return {n: c for n, c in self._config.table("mcp.servers").items() if c.get("enabled", True)}

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="copa-mcp", daemon=True)
            self._thread.start()
        return self._loop

    def _params(self, name: str, cfg: dict[str, Any]):
        from mcp import StdioServerParameters
        from mcp.client.stdio import get_default_environment

        from copa.errors import ConfigError

        if not cfg.get("command"):
            raise ConfigError(f"[mcp.servers.{name}] has no command", hint="set mcp.servers.NAME.command")
        env = get_default_environment()
        for pair in cfg.get("env", []):
            k, sep, v = pair.partition("=")
            if not sep:
                raise ConfigError(f"mcp.servers.{name}.env entry {pair!r} is not NAME=VALUE")
            env[k] = v
        for secret in cfg.get("secrets", []):
            value = self.secrets.resolve(secret) if self.secrets is not None else os.environ.get(secret)
            if value:
                env[secret] = value
        return StdioServerParameters(command=os.path.expanduser(cfg["command"]), args=list(cfg.get("args", [])),
                                     env=env, cwd=os.path.expanduser(cfg["cwd"]) if cfg.get("cwd") else None)

    def _server(self, name: str) -> tuple[_Server, list]:
        with self._lock:
            srv = self._servers.get(name)
            if srv is None or (srv.task is not None and srv.task.done()):
                cfg = self.config()[name]
                srv = _Server(name, self._params(name, cfg), float(cfg.get("timeout", 30.0)))
                loop = self._ensure_loop()
                fut = asyncio.run_coroutine_threadsafe(self._start(srv), loop)
                fut.result(5)
                self._servers[name] = srv
        try:
            return srv, srv.ready.result(timeout=srv.timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"MCP server '{name}' did not start within {srv.timeout:g} s") from None

    async def _start(self, srv: _Server) -> None:
        srv.task = asyncio.get_running_loop().create_task(srv.run())

    def tools(self) -> list[McpTool]:
        out: list[McpTool] = []
        for name, cfg in self.config().items():
            try:
                _, tools = self._server(name)
            except ImportError:
                self._errors[name] = "the MCP SDK is not installed (pip install 'copa[mcp]')"
                continue
            except Exception as e:  # one broken server must not hide the others
                srv = self._servers.get(name)
                tail = srv.stderr_tail() if srv else ""
                self._errors[name] = f"{type(e).__name__}: {e}" + (f" ({tail})" if tail else "")
                continue
            self._errors.pop(name, None)
            out += [McpTool(self, name, t, bool(cfg.get("dangerous", True))) for t in tools]
        return out

    def errors(self) -> dict[str, str]:
        return dict(self._errors)

    def list(self) -> list:
        from copa.skills.registry import SkillInfo

        infos = [SkillInfo(name=t.spec.name, description=t.spec.description, parameters=t.spec.parameters,
                           dangerous=t.spec.dangerous, source=t.spec.source, location="mcp", kind="mcp",
                           function=t.tool) for t in self.tools()]
        for name, err in self._errors.items():
            infos.append(SkillInfo(name=name, source=f"mcp:{name}", location="mcp", kind="mcp", status="error",
                                   error=err))
        return infos

    def call(self, info, arguments: dict[str, Any]) -> ToolResult:
        return self.call_tool(info.source.removeprefix("mcp:"), info.function, arguments)

    def call_tool(self, server: str, tool: str, arguments: dict[str, Any]) -> ToolResult:
        t0 = time.perf_counter()
        try:
            srv, _ = self._server(server)
        except Exception as e:
            return ToolResult(False, error=f"MCP server '{server}': {e}", error_type="unavailable", duration_ms=_ms(t0))
        fut: concurrent.futures.Future = concurrent.futures.Future()
        assert self._loop is not None and srv.queue is not None
        self._loop.call_soon_threadsafe(srv.queue.put_nowait, (tool, arguments, fut))
        try:
            res = fut.result(timeout=srv.timeout + 5)
        except concurrent.futures.TimeoutError:
            return ToolResult(False, error=f"MCP tool {tool} took longer than {srv.timeout:g} s", error_type="timeout",
                              duration_ms=_ms(t0))
        except Exception as e:
            return ToolResult(False, error=f"{type(e).__name__}: {e}", error_type="exception", duration_ms=_ms(t0))
        texts = [getattr(c, "text", None) or f"[{getattr(c, 'type', 'content')}]" for c in (res.content or [])]
        if getattr(res, "is_error", False):
            return ToolResult(False, error=" ".join(texts)[:2000] or "the tool failed", error_type="exception",
                              duration_ms=_ms(t0))
        content: Any = res.structured_content if getattr(res, "structured_content", None) is not None else (
            texts[0] if len(texts) == 1 else texts)
        return ToolResult(True, content=content, duration_ms=_ms(t0))

    def close(self) -> None:
        loop = self._loop
        if loop is None:
            return
        for srv in self._servers.values():
            if srv.queue is not None:
                loop.call_soon_threadsafe(srv.queue.put_nowait, None)
        deadline = time.monotonic() + 5
        for srv in self._servers.values():
            while srv.task is not None and not srv.task.done() and time.monotonic() < deadline:
                time.sleep(0.02)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        if not loop.is_running():
            loop.close()
        for srv in self._servers.values():
            srv.errlog.close()
        self._servers.clear()
        self._loop = None


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)
