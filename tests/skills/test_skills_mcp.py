"""MCP both ways, with the official SDK's own client and server over real stdio pipes."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed (pip install 'copa[mcp]')")

DEMO_SERVER = '''
import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

async def list_tools(ctx, params):
    return types.ListToolsResult(tools=[
        types.Tool(name="add", description="Add two numbers.", input_schema={
            "type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"]}),
        types.Tool(name="fail", description="Always fails.", input_schema={"type": "object", "properties": {}}),
    ])

async def call_tool(ctx, params):
    if params.name == "add":
        total = params.arguments["a"] + params.arguments["b"]
        return types.CallToolResult(content=[types.TextContent(type="text", text=str(total))])
    return types.CallToolResult(content=[types.TextContent(type="text", text="it broke")], is_error=True)

server = Server("demo", on_list_tools=list_tools, on_call_tool=call_tool)

async def main():
    async with stdio_server() as (r, w):
        await server.run(r, w, server.create_initialization_options())

anyio.run(main)
'''


def _config(home: Path, text: str) -> None:
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "config.toml").write_text(textwrap.dedent(text))


def test_configured_servers_become_tools(copa_home, tmp_path):
    from copa.workstation import Workstation

    script = tmp_path / "demo_server.py"
    script.write_text(DEMO_SERVER)
    _config(copa_home, f"""
        [mcp.servers.demo]
        command = {json.dumps(sys.executable)}
        args = [{json.dumps(str(script))}]
        timeout = 120.0

        [mcp.servers.missing]
        command = "/nonexistent/mcp-server"
        timeout = 5.0
    """)
    ws = Workstation()
    try:
        tools = {t.spec.name: t for t in ws.skills.as_tools()}
        assert "read_file" in tools  # ordinary skills are still there
        add = tools["demo__add"]
        assert add.spec.dangerous and add.spec.source == "mcp:demo" and add.spec.parameters["required"] == ["a", "b"]
        r = add.call({"a": 2, "b": 3})
        assert r.ok and r.content == "5"
        assert ws.skills.call("demo__add", {"a": 1.5, "b": 1}).content == "2.5"
        bad = tools["demo__fail"].call({})
        assert not bad.ok and "it broke" in bad.error
        errors = ws.skills.mcp.errors()
        assert "missing" in errors and "demo" not in errors
        listed = {i.name: i for i in ws.skills.list(include_mcp=True)}
        assert listed["demo__add"].kind == "mcp" and listed["missing"].status == "error"
        from copa.doctor import run_checks

        checks = {c.name: c for c in run_checks(ws, ["copa.skills.checks:check_skills"])}
        mcp_check = checks["mcp servers"]
        assert mcp_check.status == "warn" and "1 server(s) up, 2 tool(s)" in mcp_check.detail
        assert "missing" in mcp_check.detail
    finally:
        ws.close()


def test_copa_mcp_serve_with_the_sdk_client(copa_home):
    from mcp import ClientSession, StdioServerParameters, stdio_client

    params = StdioServerParameters(command=sys.executable, args=["-m", "copa", "mcp", "serve"],
                                   env={**os.environ, "COPA_HOME": str(copa_home)})
    out: dict = {}

    async def session_run() -> None:
        with anyio.fail_after(150):  # generous: importing the SDK alone takes seconds on a busy machine
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                tools = {t.name: t for t in (await session.list_tools()).tools}
                out["tools"] = tools
                out["time"] = await session.call_tool("current_time", {"timezone": "UTC"})
                out["remember"] = await session.call_tool("memory_remember", {"text": "The cat is called Miso"})
                out["recall"] = await session.call_tool("memory_recall", {"query": "what is the cat called"})
                out["bad"] = await session.call_tool("date_add", {"start": "not a date"})
                out["danger"] = await session.call_tool("run_command", {"command": "echo no"})
                await session.call_tool("memory_add_task", {"text": "Water the plants"})
                out["resources"] = [str(r.uri) for r in (await session.list_resources()).resources]
                out["tasks"] = await session.read_resource("copa://memory/tasks")

    anyio.run(session_run)
    tools = out["tools"]
    assert {"read_file", "current_time", "memory_remember", "memory_recall"} <= set(tools)
    assert "run_command" not in tools  # dangerous skills need --allow-dangerous
    assert tools["date_add"].input_schema["properties"]["months"]["type"] == "integer"
    now = out["time"]
    assert not now.is_error and now.structured_content["utc_offset"] == "+00:00"
    assert not out["remember"].is_error
    recall = json.loads(out["recall"].content[0].text)
    assert recall and recall[0]["text"] == "The cat is called Miso"
    assert out["bad"].is_error and "cannot read 'not a date'" in out["bad"].content[0].text
    assert out["danger"].is_error
    assert "copa://memory/tasks" in out["resources"] and "copa://memory/preferences" in out["resources"]
    tasks = json.loads(out["tasks"].contents[0].text)
    assert [t["text"] for t in tasks] == ["Water the plants"] and tasks[0]["status"] == "open"


def test_mcp_list_cli(run_copa, copa_home, tmp_path):
    # (calling an MCP tool through ws.skills is covered in-process above: each SDK process costs ~1 s of CPU)
    script = tmp_path / "demo_server.py"
    script.write_text(DEMO_SERVER)
    _config(copa_home, f"""
        [mcp.servers.demo]
        command = {json.dumps(sys.executable)}
        args = [{json.dumps(str(script))}]
        timeout = 120.0
    """)
    r = run_copa("mcp", "list", "--json", timeout=150)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert [t["name"] for t in data["tools"]] == ["demo__add", "demo__fail"] and data["errors"] == {}
