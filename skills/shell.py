"""Shell: run a command line. Dangerous: copa asks before every run.

It may read everything, write under ~, the project and /tmp, run programs and use the network.
"""

from __future__ import annotations

import os
import subprocess

from copa.skills import skill

MAX_OUTPUT = 20000


@skill(permissions=["exec", "net", "fs.read:/", "fs.write:~", "fs.write:.", "fs.write:/tmp"], dangerous=True,
       timeout=130)
def run_command(command: str, cwd: str | None = None, timeout: int = 60) -> dict:
    """Run a shell command and return its exit code and output.

    Args:
        command: the command line, run by /bin/sh.
        cwd: folder to run it in; default the current project folder.
        timeout: seconds before the command is stopped (at most 120).
    """
    folder = os.path.expanduser(cwd) if cwd else os.environ.get("COPA_CWD", os.getcwd())
    try:
        p = subprocess.run(["/bin/sh", "-c", command], cwd=folder, capture_output=True, timeout=min(timeout, 120),
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        return {"exit_code": None, "timed_out": True, "stdout": _clip(e.stdout), "stderr": _clip(e.stderr)}
    return {"exit_code": p.returncode, "timed_out": False, "stdout": _clip(p.stdout), "stderr": _clip(p.stderr)}


def _clip(data: bytes | None) -> str:
    text = (data or b"").decode("utf-8", errors="replace")
    return text if len(text) <= MAX_OUTPUT else text[:MAX_OUTPUT] + f"\n... ({len(text) - MAX_OUTPUT} more characters)"
