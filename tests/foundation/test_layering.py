"""Issue 16/20: the scheduler is core (no face, no Workstation, no doctor), and faces use public names only."""

from __future__ import annotations

import ast
from pathlib import Path

COPA = Path(__file__).resolve().parents[2] / "copa"
FACES = ("copa.cli", "copa.tui", "copa.daemon")


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


def test_the_scheduler_imports_no_face_workstation_or_doctor():
    bad = []
    for path in sorted((COPA / "scheduler").glob("*.py")):
        for module, _ in _imports(path):
            if module in ("copa.workstation", "copa.doctor") or module.startswith(FACES):
                bad.append(f"{path.name}: {module}")
    assert not bad, bad


def test_faces_import_no_private_names_of_the_core():
    bad = []
    for face in ("cli", "tui", "daemon"):
        for path in sorted((COPA / face).glob("*.py")):
            for module, names in _imports(path):
                if not module.startswith("copa.") or module.startswith(FACES):
                    continue
                bad += [f"{face}/{path.name}: {module}.{n}" for n in names if n.startswith("_") and n != "__version__"]
    assert not bad, bad
