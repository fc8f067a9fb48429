"""`copa mcp serve`: copa's skills (memory included: the memory_* skills) as an MCP server on stdio.

Each call runs the skill in its confined worker, exactly as copa's own agent would. Skills marked
dangerous are left out unless the user allows them: the other agent's approval flow is not ours.
"""

from __future__ import annotations

import json
from typing import Any

from copa import __version__


def _to_result(result) -> Any:
    import mcp_types as types

    if not result.ok:
        return types.CallToolResult(content=[types.TextContent(type="text",
                                                               text=f"{result.error_type}: {result.error}")],
                                    is_error=True)
    content = result.content
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False, indent=1)
    structured = content if isinstance(content, dict) else None
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=structured)


def build_server(skills, memory, *, allow_dangerous: bool = False, only: list[str] | None = None):
    import anyio
    import mcp_types as types
    from mcp.server.lowlevel import Server

    def offered():
        infos = [i for i in skills.list() if i.status == "ok" and i.kind != "mcp"]
        if not allow_dangerous:
            infos = [i for i in infos if not i.dangerous]
        if only:
            infos = [i for i in infos if i.name in only]
        return {i.name: i for i in infos}

    async def list_tools(ctx, params) -> types.ListToolsResult:
        infos = await anyio.to_thread.run_sync(offered)
        return types.ListToolsResult(tools=[
            types.Tool(name=i.name, description=i.spec.description, input_schema=i.parameters,
                       annotations=types.ToolAnnotations(destructive_hint=i.dangerous,
                                                         open_world_hint=any(p.startswith("net")
                                                                             for p in i.permissions)))
            for i in infos.values()])

    async def call_tool(ctx, params) -> types.CallToolResult:
        infos = await anyio.to_thread.run_sync(offered)
        if params.name not in infos:
            return types.CallToolResult(content=[types.TextContent(type="text", text=f"no tool named {params.name!r}")],
                                        is_error=True)
        result = await anyio.to_thread.run_sync(skills.call, params.name, dict(params.arguments or {}))
        return _to_result(result)

    async def list_resources(ctx, params) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[
            types.Resource(uri=uri, name=name, description=desc, mime_type="application/json")
            for uri, (name, desc, _) in RESOURCES.items()])

    async def read_resource(ctx, params) -> types.ReadResourceResult:
        uri = str(params.uri)
        if uri not in RESOURCES:
            raise ValueError(f"no resource {uri!r}; known: {', '.join(RESOURCES)}")
        data = await anyio.to_thread.run_sync(RESOURCES[uri][2], memory)
        return types.ReadResourceResult(contents=[types.TextResourceContents(
            uri=uri, mime_type="application/json", text=json.dumps(data, ensure_ascii=False, default=str))])

    return Server("copa", version=__version__, instructions="copa's skills: files, web, time, calendar, system, "
                  "memory (remember, recall, tasks) and the user's own. Resources: the open tasks and the "
                  "user's stated preferences.", on_list_tools=list_tools, on_call_tool=call_tool,
                  on_list_resources=list_resources, on_read_resource=read_resource)


def _memory_rows(items) -> list[dict]:
    return [{"id": m.id, "text": m.text, "subject": m.subject, "status": m.status,
             "due_at": m.due_at.isoformat() if m.due_at else None} for m in items]


# Read-only views of the memory store, read in copa's own process (copa's code, not a skill's)
RESOURCES = {
    "copa://memory/tasks": ("tasks", "Open and in-progress tasks, due ones first.",
                            lambda memory: _memory_rows(memory.tasks())),
    "copa://memory/preferences": ("preferences", "What the user has said they prefer.",
                                  lambda memory: _memory_rows(memory.preferences())),
    "copa://memory/stats": ("memory stats", "How much copa remembers, by kind.", lambda memory: memory.stats()),
}


def serve_stdio(skills, memory, *, allow_dangerous: bool = False, only: list[str] | None = None) -> None:
    import anyio
    from mcp.server.stdio import stdio_server

    server = build_server(skills, memory, allow_dangerous=allow_dangerous, only=only)

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)
