"""The arrows point down, read from the source (AST over copa/), so a violation fails the suite:

1. no core module imports the service layer (copa.workstation), the doctor or a face, not even for
   type checking;
2. no ``_private`` name crosses a package line (``from copa.config import _read_file``,
   ``sections._value``): what another package uses is its public API;
3. infra (the modules directly under copa/) imports no core package, no service and no face;
4. a face imports a core package through its public API only (``from copa.memory import
   MemoryStore``, not ``from copa.memory.store import ...``);
5. a face never reaches into another face, except the CLI, which is the program's entry point: it
   starts the TUI (bare ``copa``) and runs the daemon (``copa daemon``). What two faces both need
   (the daemon's status, say) lives in the core.

A case another helper of this wave is still moving is listed in KNOWN with its owner; the test
fails both on a new violation and on a known one that is gone (so the list only shrinks).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "copa"
CORE = {"memory", "agent", "providers", "skills", "scheduler", "device"}
FACES = {"cli", "tui", "daemon"}
SERVICE = {"workstation", "doctor"}
INFRA = {p.stem for p in ROOT.glob("*.py")} - SERVICE - {"__init__", "__main__"}

KNOWN: set[tuple[str, str]] = set()


def _package(path: Path) -> str:
    """'memory' for copa/memory/store.py, 'config' for copa/config.py."""
    rel = path.relative_to(ROOT).parts
    return rel[0] if len(rel) > 1 else path.stem


def _imports(tree: ast.AST) -> list[tuple[str, list[str]]]:
    """(module, names imported from it) for every import statement, wherever it is."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names]))
    return out


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if parts[0] == "copa" and len(parts) > 1 else ""


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def violations() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in sorted(ROOT.rglob("*.py")):
        rel = str(path.relative_to(ROOT.parent))
        pkg = _package(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases: dict[str, str] = {}  # local name -> copa module it stands for
        for module, names in _imports(tree):
            top = _top(module)
            if not top:
                continue
            if pkg in CORE and (top in FACES or top in SERVICE):
                found.add((rel, module))
            if pkg in INFRA and (top in CORE or top in FACES or top in SERVICE):
                found.add((rel, module))
            if pkg in FACES and top in CORE and module.count(".") > 1:
                found.add((rel, module))
            if pkg in FACES - {"cli"} and top in FACES and top != pkg:
                found.add((rel, module))
            if top != pkg:
                found |= {(rel, f"{module}.{n}") for n in names if _private(n)}
                found |= {(rel, module) for part in module.split(".") if _private(part)}
                for n in names:
                    aliases[n] = f"{module}.{n}"
        for node in ast.walk(tree):  # module._private, for a copa module of another package
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and _private(node.attr):
                target = aliases.get(node.value.id)
                if target and _top(target) != pkg:
                    found.add((rel, f"{target}.{node.attr}"))
    return found


def test_the_arrows_point_down():
    found = violations()
    new = sorted(found - KNOWN)
    assert not new, "import rules broken (see this test's docstring):\n" + "\n".join(f"{f}: {m}" for f, m in new)


def test_known_exceptions_are_still_real():
    gone = sorted(KNOWN - violations())
    assert not gone, "fixed, remove from KNOWN: " + ", ".join(f"{f}: {m}" for f, m in gone)


def test_the_rules_see_a_violation(tmp_path):
    """The checker itself: a core module importing the workstation under TYPE_CHECKING is caught."""
    fake = tmp_path / "copa"
    (fake / "memory").mkdir(parents=True)
    (fake / "memory" / "x.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                          "    from copa.workstation import Workstation\n"
                                          "from copa.config import _read_file\n")
    (fake / "paths.py").write_text("from copa.memory import MemoryStore\n")
    (fake / "tui").mkdir()
    (fake / "tui" / "y.py").write_text("from copa.daemon.status import status\n")
    global ROOT, INFRA
    saved = ROOT, INFRA
    ROOT, INFRA = fake, {"paths"}
    try:
        assert violations() == {("copa/memory/x.py", "copa.workstation"),
                                ("copa/memory/x.py", "copa.config._read_file"), ("copa/paths.py", "copa.memory"),
                                ("copa/tui/y.py", "copa.daemon.status")}
    finally:
        ROOT, INFRA = saved


def test_no_public_name_is_also_a_submodule_name():
    """``from copa.device import flash`` once gave the submodule, not the function: importing
    ``copa.device.flash`` (anyone may, first) binds ``flash`` on the package to the module, and a lazy
    export of that name is never asked for again. So a package never exports a name a submodule has."""
    import importlib
    import pkgutil

    clashes = []
    for info in pkgutil.iter_modules([str(ROOT)]):
        if not info.ispkg:
            continue
        pkg = importlib.import_module(f"copa.{info.name}")
        submodules = {s.name for s in pkgutil.iter_modules(pkg.__path__)}
        clashes += [f"copa.{info.name}.{n}" for n in set(getattr(pkg, "__all__", ())) & submodules]
    assert not clashes, "exported names that are also submodules: " + ", ".join(sorted(clashes))
