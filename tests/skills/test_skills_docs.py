"""docs/skills.md: its complete example is written to a skills folder and run as the page shows."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "skills.md"


def _block_after(marker: str, text: str) -> str:
    i = text.index(marker)
    m = re.compile(r"```[a-z]*\n(.*?)```", re.S).search(text, i)
    assert m, marker
    return m.group(1)


def test_the_documented_example_runs_as_shown(run_copa, copa_home):
    text = DOC.read_text()
    source = _block_after("<!-- example: split_bill.py -->", text)
    folder = copa_home / "config" / "skills"
    folder.mkdir(parents=True)
    (folder / "split_bill.py").write_text(source)

    run = _block_after("<!-- example-run -->", text)
    command, _, expected = run.partition("\n")
    argv = shlex.split(command.removeprefix("$ copa "))
    r = run_copa(*argv)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == json.loads(expected)

    show = _block_after("What copa made of it:", text)
    out = run_copa("skills", "show", "split_bill").stdout
    for line in show.splitlines():
        if line.startswith("  "):  # each documented parameter line is printed as shown
            assert line in out.splitlines(), line

    bad = run_copa("skills", "run", "split_bill", "--args-json",
                   '{"total": 10, "people": [{"name": "A", "weight": "two"}]}', "--json")
    assert json.loads(bad.stdout)["error"] == "people[0].weight: must be a number, not 'two'"
    assert "invalid_arguments: people[0].weight: must be a number, not 'two'" in text
