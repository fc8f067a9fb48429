"""`copa doctor`: runs every check the parts register (``copa_doctor_checks``) and nothing else.

The checks themselves live with their parts (the foundation's in ``copa.checks``); this module only
collects them for the faces, and lets a caller name checks as "module:function" (a name that does
not import is reported as that check failing, like a check that crashes).
"""

from __future__ import annotations

import importlib
from typing import Any

from copa.checks import FAIL, INFO, OK, WARN, Check, check_config, check_data_dir, check_database, check_secrets
from copa.checks import run_checks as _run

__all__ = ["FAIL", "INFO", "OK", "WARN", "Check", "check_config", "check_data_dir", "check_database",
           "check_secrets", "run_checks"]


def run_checks(ws: Any, names: list[str] | None = None) -> list[Check]:
    """Every registered check against the workstation ``ws``, or only those ``names``d."""
    if names is None:
        return _run(ws)
    results: list[Check] = []
    for spec in names:
        module, _, func = spec.partition(":")
        try:
            fn = getattr(importlib.import_module(module), func)
        except Exception as e:
            label = func.removeprefix("check_").replace("_", " ")
            results.append(Check(label, FAIL, f"check crashed: {type(e).__name__}: {e}", "report this bug"))
            continue
        results += _run(ws, [fn])
    return results
