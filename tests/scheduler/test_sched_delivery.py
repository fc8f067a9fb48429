"""Deliveries over the real protocols: SMTP with STARTTLS and AUTH to an aiosmtpd server on
127.0.0.1 (self-signed certificate made here, verified by the client), and JSON/text webhooks
(generic, Slack, Discord, ntfy, Telegram sendMessage) to a real HTTP receiver, with retries."""

from __future__ import annotations

import os
import socket
import ssl
import stat
from email import message_from_bytes
from email.policy import default as email_policy

import pytest
from devkit.servers import self_signed_cert
from sched_helpers import query

PASSWORD = "s3cret-smtp-pass"
TOKEN = "123456:telegram-test-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "tls": session.ssl is not None, "data": envelope.original_content or envelope.content})
        return "250 OK"

    def auth(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append(login)
        return AuthResult(success=(login == "copa" and password == PASSWORD), handled=False)


@pytest.fixture
def smtp_server(tmp_path):
    from aiosmtpd.controller import Controller

    cert, key = self_signed_cert(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port(), tls_context=ctx,
                            require_starttls=True, authenticator=inbox.auth, auth_require_tls=True)
    controller.start()
    yield controller, inbox, cert
    controller.stop()


def _smtp_env(controller, cert, password=PASSWORD) -> dict[str, str]:
    return {"COPA_SMTP_HOST": "127.0.0.1", "COPA_SMTP_PORT": str(controller.port), "COPA_SMTP_USERNAME": "copa",
            "COPA_SMTP_SENDER": "copa@example.org", "COPA_SMTP_CA_FILE": str(cert), "SMTP_PASSWORD": password,
            "COPA_SCHEDULER_DELIVERY_RETRY_DELAY": "0.05"}


def test_email_over_starttls_with_login(run_copa, smtp_server, copa_home):
    controller, inbox, cert = smtp_server
    r = run_copa("report", "run", "weekly-review", "--to", "email:me@example.org", env=_smtp_env(controller, cert))
    assert r.returncode == 0, r.stderr
    assert "email:me@example.org: delivered" in r.stderr
    assert len(inbox.messages) == 1 and inbox.logins == ["copa"]
    got = inbox.messages[0]
    assert got["tls"] is True and got["to"] == ["me@example.org"] and got["from"] == "copa@example.org"
    msg = message_from_bytes(got["data"], policy=email_policy)
    assert msg["Subject"].startswith("Weekly review, ")
    body = msg.get_content().replace("\r\n", "\n")
    stored = query(copa_home, "SELECT body FROM sched_reports")[0][0]
    assert body.strip() == stored.strip() and "## Open tasks" in body
    rows = query(copa_home, "SELECT kind, status, attempts FROM sched_deliveries")
    assert [tuple(r) for r in rows] == [("email", "ok", 1)]


def test_email_wrong_password_is_retried_recorded_and_never_logged(run_copa, smtp_server, copa_home):
    controller, inbox, cert = smtp_server
    wrong = "wrong-password-xyz"
    r = run_copa("report", "run", "weekly-review", "--to", "email:me@example.org",
                 env=_smtp_env(controller, cert, password=wrong))
    assert r.returncode == 1
    assert "FAILED after 3 attempt(s)" in r.stderr and "login refused" in r.stderr
    assert not inbox.messages and len(inbox.logins) >= 3 and set(inbox.logins) == {"copa"}
    row = query(copa_home, "SELECT status, attempts, error FROM sched_deliveries")[0]
    assert row["status"] == "failed" and row["attempts"] == 3 and wrong not in row["error"]
    log = (copa_home / "state" / "logs" / "copa.log")
    assert not log.exists() or wrong not in log.read_text()


def test_email_refuses_a_server_without_starttls(run_copa, tmp_path, copa_home):
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        env = {**_smtp_env(controller, tmp_path / "none.pem"), "COPA_SMTP_USERNAME": "", "COPA_SMTP_CA_FILE": "",
               "COPA_SCHEDULER_DELIVERY_RETRIES": "0"}
        r = run_copa("report", "run", "weekly-review", "--to", "email:me@example.org", env=env)
    finally:
        controller.stop()
    assert r.returncode == 1 and "does not offer STARTTLS" in r.stderr
    assert not inbox.messages


def test_webhooks_slack_discord_ntfy_telegram(run_copa, receiver, copa_home):
    cfg = copa_home / "config" / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(f'[delivery.tg]\nkind = "telegram"\nto = "4242"\nurl = "{receiver.url}"\n'
                   f'secret = "TG_TOKEN"\n\n[delivery.alerts]\nkind = "ntfy"\nto = "copa-alerts"\n'
                   f'url = "{receiver.url}/ntfy"\n\n[delivery.team]\nkind = "slack"\nsecret = "SLACK_HOOK_URL"\n')
    receiver.plan["/flaky"] = [500, 503]  # two failures, then 200: delivered on the third attempt
    receiver.plan["/down"] = [500] * 10
    receiver.body_for[f"/bot{TOKEN}/sendMessage"] = b'{"ok": true, "result": {"message_id": 1}}'
    targets = [f"webhook:{receiver.url}/hook", f"slack:{receiver.url}/slack", f"discord:{receiver.url}/discord",
               "alerts", "tg", "team", f"webhook:{receiver.url}/flaky", f"webhook:{receiver.url}/down"]
    args = [a for t in targets for a in ("--to", t)]
    r = run_copa("report", "run", "weekly-review", *args, "--json",
                 env={"TG_TOKEN": TOKEN, "COPA_SCHEDULER_DELIVERY_RETRY_DELAY": "0.05",
                      "SLACK_HOOK_URL": f"{receiver.url}/slack-secret"})
    assert r.returncode == 1  # one target is down
    import json

    out = json.loads(r.stdout)
    body, rid = out["body"], out["id"]
    results = {d["target"]: d for d in out["deliveries"]}
    assert all(results[t]["ok"] for t in targets[:7]), results
    assert results[targets[6]]["attempts"] == 3
    assert not results[targets[7]]["ok"] and results[targets[7]]["attempts"] == 3
    assert "HTTP 500" in results[targets[7]]["error"]

    hook = receiver.to("/hook")[0]["json"]
    assert hook["title"] == out["title"] and hook["text"] == body and hook["report_id"] == rid
    assert receiver.to("/slack")[0]["json"]["text"] == f"*{out['title']}*\n{body}"
    discord = receiver.to("/discord")[0]["json"]["content"]
    assert discord.startswith(f"**{out['title']}**") and len(discord) <= 2000
    ntfy = receiver.to("/ntfy/copa-alerts")[0]
    assert ntfy["body"].decode() == body and ntfy["headers"]["Title"] == out["title"]
    tg = receiver.to(f"/bot{TOKEN}/sendMessage")[0]["json"]
    assert tg["chat_id"] == "4242" and tg["text"].startswith(out["title"]) and body.strip()[:40] in tg["text"]
    assert len(receiver.to("/flaky")) == 3 and len(receiver.to("/down")) == 3
    assert receiver.to("/slack-secret")[0]["json"]["text"].startswith(f"*{out['title']}*")  # URL from a secret

    rows = query(copa_home, "SELECT target, status, attempts, error FROM sched_deliveries ORDER BY id")
    assert [(r["target"], r["status"]) for r in rows] == [(t, "ok") for t in targets[:7]] + [(targets[7], "failed")]
    assert all(TOKEN not in (r["error"] or "") for r in rows)


def test_file_stdout_and_notify_targets(run_copa, tmp_path, copa_home):
    # a notify-send on PATH that records what it was asked to show (the real binary needs a desktop)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shown = tmp_path / "notified.txt"
    script = bindir / "notify-send"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {shown}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    target = tmp_path / "briefing.md"
    env = {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    r = run_copa("report", "run", "weekly-review", "--to", f"file:{target}", "--to", "stdout", "--to", "notify",
                 env=env)
    assert r.returncode == 0, r.stderr
    body = target.read_text()
    assert body.startswith("# Weekly review") and r.stdout == body
    lines = shown.read_text().splitlines()
    assert lines[0] == "--app-name=copa" and lines[1].startswith("Weekly review") and lines[2] == "# Weekly review, " \
        + lines[1].split(", ", 1)[1]
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    # without notify-send the failure is recorded with what to install
    r = run_copa("report", "run", "weekly-review", "--to", "notify",
                 env={"PATH": str(tmp_path / "empty"), "COPA_SCHEDULER_DELIVERY_RETRIES": "0"})
    assert r.returncode == 1 and "notify-send is not installed" in r.stderr
