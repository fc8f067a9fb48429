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
    out.extend(_sandbox_checks(skills.limits))
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


def _sandbox_checks(limits) -> list[Check]:
    """One line per isolation mechanism: what the kernel enforces here, and what is refused (fails
    closed) or accepted missing (skills.allow_unenforced)."""
    try:
        report = probe_sandbox(limits)
    except Exception as e:  # a worker that cannot start at all: every skill call would fail
        return [Check("skill sandbox", FAIL, f"a skill worker cannot start: {e}", "run 'copa --debug skills list'")]
    if "error" in report:
        return [Check("skill sandbox", FAIL, str(report["error"]), "report this with 'copa doctor --json'")]
    from copa.skills.runner import MECHANISMS
    from copa.skills.worker import missing_mechanisms

    fs, net, pid = report.get("filesystem", "?"), report.get("network", "?"), report.get("pid_namespace", "?")
    seccomp = report.get("sockets", "").startswith("seccomp")
    netns = "netns" in net
    held = report.get("limits", "")
    rows = {
        "filesystem": (f"{fs}: allow-list of paths; copa's config, data, cache and state folders hidden from "
                       "every skill" if fs.startswith("landlock") else
                       "no Landlock here: only a Python audit hook on open() (native code can bypass it)"),
        "network": ("undeclared use refused by " + " + ".join(
            x for x, on in ((f"an empty network namespace ({net})", netns), ("seccomp socket()", seccomp),
                            ("Landlock TCP", "TCP" in fs), ("a Python audit hook", True)) if on)),
        "net_hosts": ("net:HOST: an empty network namespace whose only way out is copa's proxy (declared hosts)"
                      if netns else "net:HOST cannot be enforced below Python here (no network namespace)"),
        "processes": (f"process cap: {report.get('processes')} (default skills.max_processes "
                      f"{limits.max_processes})" if report.get("processes", "unlimited") != "unlimited"
                      else "no process cap can be made here (no pids cgroup, PID namespace or user namespace)"),
    }
    # the probe declares no network; a net:HOST worker gets its proxy wherever a namespace can be made
    missing = set(missing_mechanisms({"require": list(MECHANISMS)}, {**report, "proxy": netns}))
    out = []
    for name, text in rows.items():
        if name not in missing:
            out.append(Check(f"sandbox {name}", OK, text))
        elif name in limits.allow_unenforced:
            out.append(Check(f"sandbox {name}", WARN, text + "; accepted missing (skills.allow_unenforced)"))
        else:
            out.append(Check(f"sandbox {name}", WARN, text + "; skills that need it are refused",
                             f"accept the risk: copa config set skills.allow_unenforced {name}"))
    proc = ("own PID namespace and /proc: a skill sees no other process" if "own /proc" in pid else
            "no PID namespace: other processes' /proc folders are hidden by Landlock" if fs.startswith("landlock")
            else "no PID namespace and no Landlock: a skill granted /proc sees other processes")
    out.append(Check("sandbox processes view", OK if "own /proc" in pid or fs.startswith("landlock") else WARN,
                     f"{proc}; capabilities {report.get('capabilities', '?')}; copa itself is not dumpable"))
    refused = [n for n in ("memory", "cpu") if n not in held]
    out.append(Check("sandbox limits", OK if not refused else INFO,
                     f"{limits.memory_mb} MB, {limits.cpu_seconds} s CPU, {limits.timeout:g} s per call"
                     + (f" ({' and '.join(refused)} limit refused by this platform)" if refused else "")))
    return out
