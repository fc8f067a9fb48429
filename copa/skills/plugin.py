"""Skills as a plugin of copa: the skills.* keys, [mcp.servers.NAME], the skill folders, the checks."""

from __future__ import annotations

from typing import Any

from copa.config import Key
from copa.plugins import hookimpl


@hookimpl
def copa_config_keys() -> dict[str, Any]:
    return {
        "skills.dirs": Key(list, [], "Extra folders of skills (besides the built-ins, the user's and ./.copa/skills)"),
        "skills.project": Key(bool, True, "Load skills from ./.copa/skills of the project copa runs in"),
        "skills.memory_mb": Key(int, 512, "Address-space limit of a skill worker, in MB (0 = none)"),
        "skills.cpu_seconds": Key(int, 30, "CPU seconds one skill call may use (0 = no limit)"),
        "skills.idle_seconds": Key(float, 300.0, "Seconds a skill's worker is kept after a call, ready for the next "
                                   "one (then it is stopped and its memory given back)"),
        "skills.timeout": Key(float, 30.0, "Seconds a skill call may take when the skill does not say"),
        "skills.max_processes": Key(int, 64, "Processes and threads one skill worker may have (a skill may ask "
                                    "for more with @skill(processes=N))"),
        "skills.allow_unenforced": Key(list, [], "Isolation you accept missing on this machine, by name: "
                                       "filesystem, network, net_hosts, processes (else such skills are refused)"),
        "mcp.servers.NAME": {
            "command": Key(str, "", "Program that runs the MCP server (stdio)"),
            "args": Key(list, [], "Its arguments"),
            "env": Key(list, [], "Extra environment, as NAME=VALUE"),
            "secrets": Key(list, [], "Secrets passed to it as environment variables of the same name"),
            "cwd": Key(str, "", "Folder it runs in; empty = the current one"),
            "enabled": Key(bool, True, "Offer its tools to the agent"),
            "dangerous": Key(bool, True, "Its tools need approval before each call (they run outside copa's sandbox)"),
            "timeout": Key(float, 30.0, "Seconds to start it and for each tool call"),
        },
    }


@hookimpl
def copa_skill_sources(config: Any, paths: Any, cwd: str) -> list:
    """The shipped skills, skills.dirs, the user's folder and the project's ./.copa/skills."""
    import os
    from pathlib import Path

    from copa.skills import discovery

    out: list[tuple[str, Path]] = []
    b = discovery.builtin_dir()
    if b is not None:
        out.append(("builtin", b))
    if config is not None:
        out += [("extra", Path(os.path.expanduser(d))) for d in config.get("skills.dirs")]
    if paths is not None:
        out.append(("user", paths.user_skills_dir))
    if config is not None and config.get("skills.project"):
        out.append(("project", Path(cwd) / ".copa" / "skills"))
    return out


@hookimpl
def copa_doctor_checks() -> list:
    from copa.skills.checks import check_skills

    return [check_skills]
