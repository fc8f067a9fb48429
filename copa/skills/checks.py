"""`copa doctor` checks for skills: what failed to load, and what the sandbox enforces here."""

from __future__ import annotations

from copa.checks import FAIL, INFO, OK, WARN, Check


def probe_sandbox(limits) -> dict:
    """Start a confined process exactly as a skill worker is started and ask what it got."""
    from copa.skills import discovery
    from copa.skills.permissions import Permissions
    from copa.skills.runner import Worker, new_tmpdir, sandbox_config, worker_env

    tmp = new_tmpdir()
    source = discovery.builtin_dir() or discovery.Path(tmp)
    cfg = sandbox_config(Permissions(), source, limits)
    cfg["write"] = [tmp if p == "{tmp}" else p for p in cfg["write"]]
    cfg.update(mode="inspect", files=[])
    w = Worker(key=("probe",), config=cfg, env=worker_env(tmp, {}), tmpdir=tmp)
    try:
        w.start(timeout=20)
        msg = w.read_message(20)
        return msg.get("sandbox") or {"error": msg.get("error", "no report")}
    finally:
        w.close()


def check_skills(skills, config) -> list[Check]:
    infos = skills.list()
    ok = [i for i in infos if i.status == "ok"]
    broken = [i for i in infos if i.status != "ok"]
    by_loc: dict[str, int] = {}
    for i in ok:
        by_loc[i.location] = by_loc.get(i.location, 0) + 1
    where = ", ".join(f"{n} {loc}" for loc, n in sorted(by_loc.items()))
    out = [Check("skills", OK if not broken else WARN, f"{len(ok)} loaded ({where or 'none'})"
                 + (f", {len(broken)} failed" if broken else ""),
                 "see below, or run 'copa skills check'" if broken else "")]
    for i in broken[:10]:
        out.append(Check(f"skill {i.name}", WARN, f"{i.error} ({i.source})", "fix the file; the others still work"))
    out.append(_sandbox_check(skills.limits))
    if config.table("mcp.servers"):
        out.append(_mcp_check(skills))
    return out


def _mcp_check(skills) -> Check:
    tools = skills.mcp.tools()  # starts the configured servers
    errors = skills.mcp.errors()
    servers = {t.server for t in tools}
    detail = f"{len(servers)} server(s) up, {len(tools)} tool(s)"
    if errors:
        detail += "; failed: " + "; ".join(f"{n}: {e}" for n, e in errors.items())
        return Check("mcp servers", WARN, detail, "check [mcp.servers.NAME] command/args ('copa mcp list')")
    return Check("mcp servers", OK, detail)


def _sandbox_check(limits) -> Check:
    try:
        report = probe_sandbox(limits)
    except Exception as e:  # a worker that cannot start at all: every skill call would fail
        return Check("skill sandbox", FAIL, f"a skill worker cannot start: {e}", "run 'copa --debug skills list'")
    if "error" in report:
        return Check("skill sandbox", FAIL, str(report["error"]), "report this with 'copa doctor --json'")
    fs, net = report.get("filesystem", "?"), report.get("network", "?")
    parts = [f"files: {fs}" if fs.startswith("landlock") else
             "files: no Landlock here; enforced instead by a Python audit hook on open() (native code can bypass it)"]
    seccomp = report.get("sockets") == "seccomp"
    if net in ("netns", "userns+netns"):
        parts.append(f"network: undeclared use refused by an empty network namespace ({net})"
                     + (" + seccomp socket()" if seccomp else "") + (" + Landlock TCP" if "TCP" in fs else ""))
    else:
        parts.append("network: no namespace allowed here; enforced by " + ("seccomp socket() + " if seccomp else "")
                     + ("Landlock TCP denial + " if "TCP" in fs else "") + "a Python audit hook on sockets")
    held = report.get("limits", "")
    refused = [n for n in ("memory", "cpu") if n not in held]
    parts.append(f"limits: {limits.memory_mb} MB, {limits.cpu_seconds} s CPU, {limits.timeout:g} s per call"
                 + (f" ({' and '.join(refused)} limit refused by this platform)" if refused else ""))
    strong = fs.startswith("landlock") and (net in ("netns", "userns+netns") or "TCP" in fs or seccomp)
    return Check("skill sandbox", OK if strong else INFO, "; ".join(parts),
                 "" if strong else "a Linux kernel with Landlock (5.13+) and user namespaces gives full isolation")
