"""The readable rule syntax (pure) and `copa device rules` against the host firmware build."""

from __future__ import annotations

import json

import pytest

from copa.device.protocol import Rule
from copa.device.rules_syntax import format_rule, parse_rule
from copa.errors import UsageError


def test_the_issue_example():
    r = parse_rule("a0 > 612 for 5s -> d7 high, notify; clear < 590")
    assert r == Rule(Rule.ADC, 0, Rule.ABOVE, 612, 590, 5000, act_pin=7, act_fire=1, act_clear=0, notify=True)
    assert format_rule(r) == "a0 > 612 for 5s -> d7 high, notify; clear < 590"


@pytest.mark.parametrize("text", [
    "a0 > 612 for 5s -> d7 high, notify; clear < 590",
    "d2 < 1 -> d13 low",
    "a1 < 200 for 500ms -> notify; clear > 250",
    "a5 > 1000 for 1m -> d8 high keep",
    "a3 > 7 -> d4 low, notify",
    "d9 > 0 for 65535ms -> notify",
])
def test_round_trip(text):
    r = parse_rule(text)
    assert format_rule(r) == text
    assert parse_rule(format_rule(r)) == r
    assert Rule.from_wire(r.to_wire()) == r


def test_variants_and_defaults():
    r = parse_rule("  A2 >  100  for 1.5s ->  D7 ON ")
    assert (r.src_kind, r.src_index, r.threshold, r.clear, r.duration_ms) == (Rule.ADC, 2, 100, 101, 1500)
    assert parse_rule("d2 < 1 -> notify").clear == 0  # no hysteresis: clears as soon as d2 is 1 again
    assert parse_rule("a0 > 612 -> notify; clear < 613") == parse_rule("a0 > 612 -> notify")
    assert (r.act_pin, r.act_fire, r.act_clear, r.notify) == (7, 1, 0, False)
    assert parse_rule("pin4 < 1 -> notify").src_kind == Rule.PIN


@pytest.mark.parametrize("text,needle", [
    ("a0 > 612", "missing '->'"),
    ("x0 > 1 -> notify", "unknown source"),
    ("a0 >= 1 -> notify", "cannot read the condition"),
    ("a0 > 70000 -> notify", "0..65535"),
    ("a0 > 1 for 2h -> notify", "duration"),
    ("a0 > 1 for 70s -> notify", "65.5 s"),
    ("a0 > 1 -> ", "needs an action"),
    ("a0 > 1 -> d7 maybe", "unknown action"),
    ("a0 > 1 -> d7 high, d8 low", "one pin"),
    ("a0 > 600 -> notify; clear > 650", "clear < N"),
    ("a0 < 600 -> notify; clear > 550", "wrong side"),
    ("a0 > 600 -> notify; unclear", "clear < 590"),
])
def test_errors_say_what_is_wrong(text, needle):
    with pytest.raises(UsageError) as e:
        parse_rule(text)
    assert needle in str(e.value) and "a0 > 612" in str(e.value)


def test_rules_cli(run_copa, board):
    assert run_copa("device", "pair", board.link, "--name", "lab").returncode == 0
    r = run_copa("device", "rules", "lab", "add", "a0 > 612 for 5s -> d7 high, notify; clear < 590", "--json")
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout)["slot"]
    r = run_copa("device", "rules", "lab", "add", "d2 < 1 -> d13 low")
    assert r.returncode == 0, r.stderr
    listed = json.loads(run_copa("device", "rules", "lab", "list", "--json").stdout)
    assert [x["rule"] for x in listed] == ["a0 > 612 for 5s -> d7 high, notify; clear < 590", "d2 < 1 -> d13 low"]
    assert all(x["state"] in ("idle", "pending", "active") for x in listed)
    r = run_copa("device", "rules", "lab", "add", "a0 > 612 -> frobnicate")
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "unknown action" in r.stderr
    assert run_copa("device", "rules", "lab", "remove", str(first)).returncode == 0
    listed = json.loads(run_copa("device", "rules", "lab", "list", "--json").stdout)
    assert [x["rule"] for x in listed] == ["d2 < 1 -> d13 low"]
    assert run_copa("device", "rules", "lab", "clear").returncode == 0
    assert json.loads(run_copa("device", "rules", "lab", "list", "--json").stdout) == []


def test_rule_added_by_cli_drives_the_board(run_copa, board):
    import time

    assert run_copa("device", "pair", board.link, "--name", "lab").returncode == 0
    board.control("adc 0 100")
    assert run_copa("device", "rules", "lab", "add", "a0 > 612 for 200ms -> d8 high; clear < 590").returncode == 0
    board.control("adc 0 700")
    deadline = time.monotonic() + 3
    while board.pin(8)[1] != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert board.pin(8)[1] == 1
    board.control("adc 0 500")
    deadline = time.monotonic() + 3
    while board.pin(8)[1] != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert board.pin(8)[1] == 0
