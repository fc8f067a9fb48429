"""`copa doctor` says which models are reachable (a real server and a closed port)."""

from __future__ import annotations

import json

from tests.agent.fake_servers import FakeModelServer


def test_doctor_reports_reachable_and_unreachable_models(run_copa):
    with FakeModelServer("anthropic") as live:
        live.configure("live")
        dead = FakeModelServer("openai").start()
        dead.configure("dead")
        dead.stop()
        r = run_copa("doctor", "--json", env={"COPA_AGENT_MODEL": "live"})
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["model live (default)"]["status"] == "ok" and "reachable" in checks["model live (default)"]["detail"]
    assert checks["model dead"]["status"] == "warn" and "unreachable" in checks["model dead"]["detail"]
    assert "copa models test dead" in checks["model dead"]["fix"]


def test_doctor_without_models_says_how_to_add_one(run_copa):
    r = run_copa("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["models"]["status"] == "warn" and "copa models add" in checks["models"]["fix"]


def test_doctor_missing_key_for_public_api(run_copa):
    run_copa("models", "add", "claude", "--provider", "anthropic", "--model", "claude-sonnet-4-5")
    r = run_copa("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    c = checks["model claude (default)"]
    assert c["status"] == "fail" and "ANTHROPIC_API_KEY" in c["detail"] and "copa secrets set" in c["fix"]
