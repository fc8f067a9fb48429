"""Reports gathered from the real parts: memory (tasks, new and superseded memories), a
device_readings table, doctor checks, the model summary from a real loopback model server, and
storage in three places (row, Markdown file, searchable memory of kind report)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from copa.scheduler import reports, sections
from copa.workstation import Workstation


@pytest.fixture
def ws(copa_home):
    w = Workstation()
    yield w
    w.close()


def test_sparkline_scales_and_flat_series():
    assert sections.sparkline([1, 2, 3, 4, 5, 6, 7, 8], width=8) == "▁▂▃▄▅▆▇█"
    assert sections.sparkline([5, 5, 5]) == "▄▄▄"
    assert sections.sparkline([]) == ""
    assert len(sections.sparkline(list(range(100)), width=16)) == 16


def test_telemetry_section_summarises_each_sensor(ws):
    now = datetime.now(UTC)
    ctx = sections.Context(ws, "t", now, None, UTC)
    assert sections.telemetry(ctx) == "No devices."
    ws.conn.execute("CREATE TABLE IF NOT EXISTS device_readings (device TEXT, channel TEXT, at TEXT, value REAL)")
    rows = [("lab", "temp", (now - timedelta(minutes=60 - i)).isoformat(), 20.0 + i) for i in range(10)]
    rows += [("lab", "hum", (now - timedelta(minutes=5)).isoformat(), 40.0),
             ("lab", "hum", (now - timedelta(hours=30)).isoformat(), 99.0)]  # outside the 24 h window
    ws.conn.executemany("INSERT INTO device_readings VALUES (?,?,?,?)", rows)
    out = sections.telemetry(ctx, hours="24")
    temp = next(line for line in out.splitlines() if "| temp |" in line)
    cells = [c.strip() for c in temp.strip("|").split("|")]
    assert cells[:6] == ["lab", "temp", "20", "29", "24.5", "29"]
    assert cells[6][0] == "▁" and cells[6][-1] == "█"
    hum = next(line for line in out.splitlines() if "| hum |" in line)
    assert "99" not in hum and "| 40 |" in hum
    assert "11 readings" in out


def test_daily_briefing_gathers_memory_and_is_stored_three_ways(ws):
    mem = ws.memory
    since = datetime.now(UTC) - timedelta(seconds=1)
    mem.add_task("renew the passport", due=datetime.now(UTC) - timedelta(days=1))
    mem.add_task("water the plants")
    old = mem.add("The office is on floor 2", kind="fact", subject="office floor")
    mem.update(old, valid_to=datetime.now(UTC).isoformat())
    mem.add("Alice prefers tea over coffee", kind="preference", subject="alice drink")
    rep = reports.create(ws, "daily-briefing")
    body = rep.body
    assert body.startswith("# Daily briefing, ")
    assert "renew the passport" in body and "**overdue**" in body and "water the plants" in body
    assert "Alice prefers tea over coffee" in body
    assert "~~The office is on floor 2~~" in body
    assert "No devices." in body and "checks" in body
    assert "{{" not in body and "> " not in body.split("## Tasks")[0]  # no model: no summary, no leftovers
    # stored: the file, the row, and a memory of kind report that recall finds
    assert Path(rep.path).read_text() == body
    assert reports.get(ws, rep.id).body == body and reports.get(ws, "last").id == rep.id
    assert rep.memory_id and mem.get(rep.memory_id).kind == "report"
    hits = mem.search("passport", kinds=["report"])
    assert any(h.id == rep.memory_id for h in hits)
    # the next briefing's "learned" starts at this one
    later = reports.create(ws, "daily-briefing")
    assert "Alice prefers tea" not in later.body.split("## Learned")[1].split("##")[0]
    assert reports.last_report_at(ws, "daily-briefing") >= since


def test_user_template_placeholders_and_broken_section(ws):
    d = ws.paths.config_dir / "reports"
    d.mkdir(parents=True)
    (d / "mine.md").write_text("# Mine {{date}}\n\n{{tasks}}\n\n{{nonsense}}\n\n{{skill:does_not_exist x=1}}\n")
    names = {t["name"]: t["source"] for t in reports.templates(ws)}
    assert names["mine"].endswith("mine.md") and names["daily-briefing"] == "built-in"
    title, body = reports.render(ws, "mine")
    assert title.startswith("Mine ")
    assert "No open tasks." in body and "unknown placeholder {{nonsense}}" in body
    assert "does_not_exist" in body  # a failing skill is reported in place, the report still renders
    with pytest.raises(Exception, match="no report template named 'nope'"):
        reports.create(ws, "nope")


def test_summary_paragraph_from_the_fast_model(ws, monkeypatch):
    from tests.agent.fake_servers import Answer, FakeModelServer

    with FakeModelServer("openai") as srv:
        srv.configure("fake")
        srv.add(Answer("Two tasks are open; nothing needs you urgently."))
        monkeypatch.setenv("COPA_AGENT_RETRIES", "0")
        w = Workstation()
        try:
            w.memory.add_task("call the plumber")
            rep = reports.create(w, "daily-briefing")
        finally:
            w.close()
        assert "> Two tasks are open; nothing needs you urgently." in rep.body
        assert rep.body.index("> Two tasks") < rep.body.index("## Tasks")
        sent = json.dumps(srv.requests[0].body)
        assert "call the plumber" in sent  # the model was shown the gathered report


def test_report_cli_run_list_show(run_copa, copa_home):
    r = run_copa("report", "run", "weekly-review")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("# Weekly review, ") and "## Scheduled jobs, last 7 days" in r.stdout
    listed = json.loads(run_copa("report", "list", "--json").stdout)
    assert len(listed) == 1 and listed[0]["name"] == "weekly-review"
    shown = run_copa("report", "show", listed[0]["id"])
    assert shown.stdout == r.stdout
    bad = run_copa("report", "run", "weekly-reveiw")
    assert bad.returncode == 5 and "no report template named" in bad.stderr
    bad_to = run_copa("report", "run", "weekly-review", "--to", "pigeon:home")
    assert bad_to.returncode == 2 and "unknown delivery target" in bad_to.stderr
    assert len(json.loads(run_copa("report", "list", "--json").stdout)) == 1  # nothing half-done


def test_calendar_section_reads_events_through_the_calendar_skill(ws, receiver, monkeypatch):
    start = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    ics = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//copa tests//EN\r\nBEGIN:VEVENT\r\nUID:e1@copa\r\n"
           f"DTSTAMP:{start:%Y%m%dT%H%M%SZ}\r\nDTSTART:{start:%Y%m%dT%H%M%SZ}\r\n"
           f"DTEND:{start + timedelta(hours=1):%Y%m%dT%H%M%SZ}\r\nSUMMARY:Dentist appointment\r\n"
           "LOCATION:Rue de la Paix\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    receiver.files["/cal.ics"] = ics.encode()
    ctx = sections.Context(ws, "t", datetime.now(UTC), None, UTC)
    assert "No calendar configured" in sections.calendar(ctx)
    monkeypatch.setenv("COPA_REPORTS_CALENDARS", f"{receiver.url}/cal.ics")
    w = Workstation()
    try:
        out = sections.calendar(sections.Context(w, "t", datetime.now(UTC), None, UTC), days="7")
        assert "Dentist appointment (Rue de la Paix)" in out, out
        assert f"{start:%Y-%m-%d}" in out
        assert sections.calendar(
            sections.Context(w, "t", datetime.now(UTC), None, UTC), days="1") == "No events in the next 1 day(s)."
    finally:
        w.close()


def test_a_python_skill_as_report_template(ws):
    d = ws.paths.user_skills_dir
    d.mkdir(parents=True, exist_ok=True)
    (d / "numbers.py").write_text(
        "from copa.skills import skill\n\n\n"
        "@skill\n"
        "def numbers_report(since: str = '') -> str:\n"
        "    '''A report of numbers.\n\n    Args:\n        since: the previous report's time.\n    '''\n"
        "    return '# Numbers\\n\\nsince=' + (since or 'never') + '\\n'\n")
    first = reports.create(ws, "skill:numbers_report")
    assert first.title == "Numbers" and "since=never" in first.body
    second = reports.create(ws, "skill:numbers_report")
    assert f"since={reports.iso(first.created_at)}" in second.body
    with pytest.raises(Exception, match="no skill named 'nonexistent'"):
        reports.create(ws, "skill:nonexistent")


def test_chosen_skills_section(copa_home, monkeypatch):
    monkeypatch.setenv("COPA_REPORTS_SKILLS", "current_time timezone=Asia/Tokyo,no_such_skill")
    with Workstation() as w:
        body = reports.create(w, "weekly-review").body
    part = body.split("### current_time", 1)[1]
    assert "+09:00" in part.split("###")[0]
    assert "### no_such_skill" in body and "no_such_skill failed" in body
