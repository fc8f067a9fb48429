"""The red-team suite again as an unprivileged user: what the kernel gives a normal user must hold too.

Run as root (as CI is), this test re-runs tests/security as ``nobody`` in a subprocess; the tests
marked root_only are skipped there. Without root (already unprivileged) it has nothing to add.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
          "--"]


def _interpreter(env: dict[str, str]) -> str | None:
    """A Python 3.x (this minor version) that nobody may run: this one, or the system's (a virtualenv
    made from an interpreter under /root is out of nobody's reach; its packages are not)."""
    for exe in (sys.executable, f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"):
        # through a shell: setpriv itself may still hold its privileges while it starts the program
        probe = [*NOBODY, "/bin/sh", "-c", f'exec "{exe}" -c "import pytest, copa"']
        if os.path.exists(exe) and subprocess.run(probe, env=env, capture_output=True).returncode == 0:
            return exe
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="already unprivileged: the suite itself is the proof")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is missing")
def test_security_suite_as_nobody():
    import site

    base = tempfile.mkdtemp(prefix="copa-nobody-")
    os.chmod(base, 0o777)
    try:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": base, "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": base,
               "PYTHONPATH": os.pathsep.join([str(REPO), *site.getsitepackages()])}
        exe = _interpreter(env)
        if exe is None:
            pytest.skip("no Python interpreter here that the user nobody may run")
        tests = [str(p) for p in sorted((REPO / "tests" / "security").glob("test_*.py"))
                 if p.name != "test_unprivileged.py"]
        r = subprocess.run([*NOBODY, "/bin/sh", "-c", 'exec "$0" "$@"', exe, "-m", "pytest", "-q", "-p",
                            "no:cacheprovider", "-x", f"--basetemp={base}/t", "--rootdir", str(REPO), *tests],
                           cwd=base, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
        assert " passed" in r.stdout
    finally:
        shutil.rmtree(base, ignore_errors=True)
