"""`copa skills ...` and the doctor check, through the real CLI in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HEAVY = ("textual", "apscheduler", "keyring", "nacl", "serial", "httpx", "mcp", "yaml", "psutil", "icalendar")


def _user_skill(home: Path, name: str, source: str) -> Path:
    d = home / "config" / "skills"
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    p.write_text(textwrap.dedent(source))
    return p


ECHO = '''
from typing import Literal
from copa.skills import skill

@skill
def echo(text: str, times: int = 1, loud: bool = False, mode: Literal["a", "b"] = "a") -> dict:
    """Repeat some text.

    Args:
        text: the text.
        times: how often.
    """
    out = " ".join([text] * times)
    print("debug: repeating", times, "times", end="")
    return {"out": out.upper() if loud else out, "mode": mode}

@skill
def fails() -> str:
    """Always fails."""
    raise RuntimeError("as designed")
'''


@pytest.mark.parametrize("group", ["skills", "mcp"])
def test_help_imports_nothing_heavy(group):
    code = (f"import sys; from copa.cli.main import main; rc = main(['{group}', '--help']); "
            "print(sorted(m for m, mod in sys.modules.items() if mod is not None))")  # None: blocked, not imported
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "list" in out.stdout
    modules = set(json.loads(out.stdout.strip().splitlines()[-1].replace("'", '"')))
    loaded = {m.split(".")[0] for m in modules}
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    assert "copa.skills.registry" not in modules and "copa.skills.runner" not in modules


def test_list_show_run(run_copa, copa_home):
    _user_skill(copa_home, "echo.py", ECHO)
    _user_skill(copa_home, "broken.py", "import nope_nope\n")
    r = run_copa("skills", "list", "--json")
    assert r.returncode == 0, r.stderr
    infos = {i["name"]: i for i in json.loads(r.stdout)}
    assert infos["echo"]["status"] == "ok" and infos["echo"]["location"] == "user"
    assert infos["broken"]["status"] == "error" and "nope_nope" in infos["broken"]["error"]
    assert infos["read_file"]["location"] == "builtin"
    table = run_copa("skills", "list")
    assert "ERROR" in table.stdout and "echo" in table.stdout
    show = run_copa("skills", "show", "echo")
    assert "times: integer (default 1)  how often." in show.stdout and '"required": ["text"]' in show.stdout
    run = run_copa("skills", "run", "echo", "--arg", "text=42", "--arg", "times=2", "--arg", "loud=true", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["content"] == {"out": "42 42", "mode": "a"}  # "42" stays a string
    plain = run_copa("skills", "run", "echo", "--arg", "text=hi")
    assert plain.returncode == 0 and json.loads(plain.stdout)["out"] == "hi"
    assert plain.stderr == "| debug: repeating 1 times\n"  # the skill's print, apart from the result
    bad = run_copa("skills", "run", "echo", "--arg", "text=x", "--arg", "mode=c", "--json")
    assert bad.returncode == 1 and json.loads(bad.stdout)["error_type"] == "invalid_arguments"
    fail = run_copa("skills", "run", "fails")
    assert fail.returncode == 1 and "RuntimeError: as designed" in fail.stderr and "Traceback" not in fail.stderr
    missing = run_copa("skills", "show", "ecko")
    assert missing.returncode == 5 and "did you mean 'echo'" in missing.stderr


def test_dangerous_needs_yes(run_copa, tmp_path):
    r = run_copa("skills", "run", "run_command", "--arg", "command=echo hi")
    assert r.returncode != 0 and "--yes" in r.stderr
    ok = run_copa("skills", "run", "run_command", "--arg", "command=echo hi", "--yes", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["content"]["stdout"] == "hi\n"


def test_new_scaffold_and_its_test_pass(run_copa, copa_home):
    r = run_copa("skills", "new", "greeter")
    assert r.returncode == 0, r.stderr
    folder = copa_home / "config" / "skills"
    assert (folder / "greeter.py").exists() and (folder / "test_greeter.py").exists()
    again = run_copa("skills", "new", "greeter")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert run_copa("skills", "new", "Bad-Name").returncode == 2
    t = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(folder / "test_greeter.py")], capture_output=True, text=True, timeout=120, cwd=folder)
    assert t.returncode == 0, t.stdout + t.stderr
    listed = json.loads(run_copa("skills", "list", "--json").stdout)
    assert any(i["name"] == "greeter" and i["status"] == "ok" for i in listed)


def test_check_and_doctor(run_copa, copa_home):
    assert run_copa("skills", "check").returncode == 0
    _user_skill(copa_home, "nodoc.py", '''
        from copa.skills import skill

        @skill(permissions=["exec"])
        def nodoc(x: int) -> int:
            """Does x."""
            return x
    ''')
    _user_skill(copa_home, "perm.py", '''
        from copa.skills import skill

        @skill(permissions=["internet"])
        def perm() -> int:
            """Bad permission."""
            return 1
    ''')
    r = run_copa("skills", "check", "--json")
    assert r.returncode == 1
    problems = json.loads(r.stdout)["problems"]
    msgs = {(p["skill"], p["level"], p["message"]) for p in problems}
    assert any(s == "perm" and lv == "error" and "unknown permission 'internet'" in m for s, lv, m in msgs)
    assert any(s == "nodoc" and lv == "warning" and "not marked dangerous" in m for s, lv, m in msgs)
    assert any(s == "nodoc" and "parameter 'x' has no description" in m for s, lv, m in msgs)
    doc = run_copa("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(doc.stdout)["checks"]}
    assert checks["skills"]["status"] == "warn" and "1 failed" in checks["skills"]["detail"]
    assert "internet" in checks["skill perm"]["detail"]
    for mechanism in ("filesystem", "network", "net_hosts", "processes"):  # one line per mechanism
        assert checks[f"sandbox {mechanism}"]["status"] in ("ok", "warn"), checks
    assert "copa's config, data, cache and state folders hidden" in checks["sandbox filesystem"]["detail"]
