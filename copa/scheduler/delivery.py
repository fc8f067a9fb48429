"""Delivery targets: where a report or a job's output goes, several per job.

A target is either the name of a ``[delivery.NAME]`` table in the config or an inline spec:
``file:PATH``, ``stdout``, ``notify``, ``email:ADDRESS``, ``webhook:URL``, ``slack:URL``,
``discord:URL``, ``ntfy:TOPIC`` (or ``ntfy:https://server/topic``), ``telegram:CHAT_ID``.
Every attempt is bounded by a timeout; failures are retried with a doubling delay and recorded in
``sched_deliveries``. Secrets (SMTP password, bot tokens) come from ``ws.secrets.resolve`` and never
reach an error message or the log.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from copa.errors import UsageError

if TYPE_CHECKING:
    from copa.scheduler.parts import Parts

KINDS = ("file", "stdout", "notify", "email", "webhook", "slack", "discord", "ntfy", "telegram")
HTTP_TIMEOUT = 20.0
DEFAULT_NTFY = "https://ntfy.sh"
DEFAULT_TELEGRAM = "https://api.telegram.org"
TELEGRAM_SECRET = "TELEGRAM_BOT_TOKEN"


class DeliveryError(Exception):
    """One attempt failed; the message is safe to record (no secrets)."""


@dataclass
class Target:
    spec: str
    kind: str
    to: str = ""
    url: str = ""
    secret: str = ""


@dataclass
class DeliveryResult:
    target: str
    kind: str
    ok: bool
    attempts: int
    error: str | None = None
    detail: str | None = None  # e.g. the file written

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def resolve_target(ws: Parts, spec: str) -> Target:
    """A configured ``[delivery.NAME]`` or an inline ``kind:value``; a clear error otherwise."""
    spec = spec.strip()
    named = ws.config.table("delivery")
    if spec in named:
        e = named[spec]
        t = Target(spec, e["kind"], e.get("to", ""), e.get("url", ""), e.get("secret", ""))
    else:
        kind, _, value = spec.partition(":")
        kinds = list(_senders())
        if kind not in kinds:
            choices = ", ".join(sorted(named)) or "none configured"
            raise UsageError(f"unknown delivery target {spec!r}",
                             hint=f"use kind:value with kind one of {', '.join(kinds)}, or a [delivery.NAME] "
                                  f"from the config ({choices})")
        t = Target(spec, kind)
        if kind in ("webhook", "slack", "discord"):
            t.url = value
        elif kind == "ntfy" and value.startswith(("http://", "https://")):
            t.url, _, t.to = value.rpartition("/")
        else:
            t.to = value
    _check(t)
    return t


def _check(t: Target) -> None:
    need = {"file": t.to, "email": t.to, "telegram": t.to, "ntfy": t.to,
            "webhook": t.url, "slack": t.url or t.secret, "discord": t.url or t.secret}
    if t.kind in need and not need[t.kind]:
        what = "a URL" if t.kind in ("webhook", "slack", "discord") else "a value"
        raise UsageError(f"delivery target {t.spec!r} needs {what}", hint=f"e.g. {_example(t.kind)}")
    if t.url and not t.url.startswith(("http://", "https://")):
        raise UsageError(f"delivery target {t.spec!r}: {t.url!r} is not an http(s) URL")
    if t.kind == "email" and "@" not in t.to:
        raise UsageError(f"delivery target {t.spec!r}: {t.to!r} is not an email address")


def _example(kind: str) -> str:
    return {"file": "file:~/reports/briefing.md", "email": "email:me@example.org", "telegram": "telegram:123456",
            "ntfy": "ntfy:my-topic", "webhook": "webhook:https://example.org/hook",
            "slack": "slack:https://hooks.slack.com/services/...",
            "discord": "discord:https://discord.com/api/webhooks/..."}.get(kind, kind)


def deliver_all(ws: Parts, specs: list[str], title: str, body: str, *, run_id: int | None = None,
                report_id: str | None = None, stop: threading.Event | None = None) -> list[DeliveryResult]:
    """Deliver to every target (one failing never stops the others); each result is recorded."""
    from copa.log import redact

    retries = max(0, int(ws.config.get("scheduler.delivery_retries")))
    delay = float(ws.config.get("scheduler.delivery_retry_delay"))
    results = []
    for spec in specs:
        attempts, error, detail = 0, None, None
        try:
            target = resolve_target(ws, spec)
        except UsageError as e:
            results.append(_record(ws, DeliveryResult(spec, "?", False, 0, str(e)), run_id, report_id))
            continue
        for i in range(retries + 1):
            attempts += 1
            try:
                detail = _senders()[target.kind](ws, target, title, body, {"run_id": run_id, "report_id": report_id})
                error = None
                break
            except Exception as e:  # any failure of one attempt: record, wait, retry
                error = redact(str(e) if isinstance(e, DeliveryError) else f"{type(e).__name__}: {e}")
            if i < retries and (stop or threading.Event()).wait(delay * 2**i):
                break  # the daemon is stopping: record what we have
        results.append(_record(ws, DeliveryResult(spec, target.kind, error is None, attempts, error, detail),
                               run_id, report_id))
    return results


def _record(ws: Parts, r: DeliveryResult, run_id: int | None, report_id: str | None) -> DeliveryResult:
    ws.conn.execute(
        "INSERT INTO sched_deliveries (run_id, report_id, target, kind, status, attempts, error, at)"
        " VALUES (?,?,?,?,?,?,?,?)",
        (run_id, report_id, r.target, r.kind, "ok" if r.ok else "failed", r.attempts, r.error,
         datetime.now(UTC).isoformat(timespec="milliseconds")),
    )
    return r


# --- senders: each raises on failure, returns a short detail on success -------------------------

def _send_file(ws: Parts, t: Target, title: str, body: str, meta: dict[str, Any]) -> str:
    from copa.paths import atomic_write

    path = Path(os.path.expanduser(t.to))
    if t.to.endswith("/") or path.is_dir():
        stamp = datetime.now().strftime("%Y-%m-%d_%H%M%S")
        path = path / f"{_slug(title)}-{stamp}.md"
    atomic_write(path, body.encode("utf-8"), mode=0o600)
    return str(path)


def _send_stdout(ws: Parts, t: Target, title: str, body: str, meta: dict[str, Any]) -> str:
    sys.stdout.write(body if body.endswith("\n") else body + "\n")
    sys.stdout.flush()
    return "stdout"


def _send_notify(ws: Parts, t: Target, title: str, body: str, meta: dict[str, Any]) -> str:
    exe = shutil.which("notify-send")
    if not exe:
        raise DeliveryError("notify-send is not installed (Debian: apt install libnotify-bin)")
    text = body if len(body) <= 400 else body[:397] + "..."
    proc = subprocess.run([exe, "--app-name=copa", title, text], capture_output=True, text=True, timeout=15)
    if proc.returncode != 0:
        raise DeliveryError(f"notify-send failed: {proc.stderr.strip()[:200] or proc.returncode}")
    return "notification"


def _send_email(ws: Parts, t: Target, title: str, body: str, meta: dict[str, Any]) -> str:
    import smtplib
    import ssl
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    cfg = ws.config
    host, port = cfg.get("smtp.host"), int(cfg.get("smtp.port"))
    if not host:
        raise DeliveryError("smtp.host is not set (copa config set smtp.host mail.example.org)")
    user, timeout = cfg.get("smtp.username"), float(cfg.get("smtp.timeout"))
    sender = cfg.get("smtp.sender") or user
    if not sender:
        raise DeliveryError("no sender address: set smtp.sender (or smtp.username)")
    ca_file = cfg.get("smtp.ca_file") or None
    try:
        context = ssl.create_default_context(cafile=os.path.expanduser(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as e:
        raise DeliveryError(f"smtp.ca_file {ca_file} cannot be used: {e}") from None
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, t.to, title
    msg["Date"], msg["Message-ID"] = formatdate(localtime=True), make_msgid(domain="copa.local")
    msg.set_content(body)
    try:
        if port == 465:
            smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            smtp.ehlo()
            if port != 465 and cfg.get("smtp.starttls"):
                if not smtp.has_extn("starttls"):
                    raise DeliveryError(f"{host}:{port} does not offer STARTTLS; refusing to send in clear "
                                        "(set smtp.starttls false only for a trusted local relay)")
                smtp.starttls(context=context)
                smtp.ehlo()
            if user:
                name = cfg.get("smtp.password_secret")
                password = ws.secrets.resolve(name) if name else None
                if not password:
                    raise DeliveryError(f"no SMTP password: set the secret {name} (copa secrets set {name})")
                smtp.login(user, password)
            smtp.send_message(msg)
    except smtplib.SMTPAuthenticationError as e:
        raise DeliveryError(f"SMTP login refused for {user}: {e.smtp_code}") from None
    except (smtplib.SMTPException, OSError, ssl.SSLError) as e:
        raise DeliveryError(f"SMTP {host}:{port}: {type(e).__name__}: {e}") from None
    return t.to


def _post(url: str, *, json_body: Any = None, content: str | None = None, headers: dict[str, str] | None = None,
          what: str) -> Any:
    import httpx

    try:
        with httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=False) as client:
            resp = client.post(url, json=json_body, content=content.encode() if content is not None else None,
                               headers=headers or {})
    except httpx.HTTPError as e:
        raise DeliveryError(f"{what}: {type(e).__name__}: {e}") from None
    if resp.status_code >= 300:
        raise DeliveryError(f"{what}: HTTP {resp.status_code}: {resp.text.strip()[:200]}")
    return resp


def _bearer(ws: Parts, t: Target) -> dict[str, str]:
    if not t.secret:
        return {}
    token = ws.secrets.resolve(t.secret)
    if not token:
        raise DeliveryError(f"the secret {t.secret} is not set (copa secrets set {t.secret})")
    return {"Authorization": f"Bearer {token}"}


def _send_webhook(ws: Parts, t: Target, title: str, body: str, meta: dict[str, Any]) -> str:
    payload = {"source": "copa", "title": title, "text": body, **{k: v for k, v in meta.items() if v is not None}}
    _post(t.url, json_body=payload, headers=_bearer(ws, t), what="webhook")
    return t.url


def _secret_url(ws: Parts, t: Target) -> str:
    """Slack and Discord webhook URLs are credentials: ``secret`` may name the secret holding one."""
    if t.url:
        return t.url
    url = ws.secrets.resolve(t.secret)
    if not url:
        raise DeliveryError(f"the secret {t.secret} is not set (copa secrets set {t.secret})")
    return url


def _send_slack(ws: Parts, t: Target, title: str, body: str, meta: dict[str, Any]) -> str:
    _post(_secret_url(ws, t), json_body={"text": _clip(f"*{title}*\n{body}", 39000)}, what="slack")
    return "slack"


def _send_discord(ws: Parts, t: Target, title: str, body: str, meta: dict[str, Any]) -> str:
    _post(_secret_url(ws, t), json_body={"content": _clip(f"**{title}**\n{body}", 2000)}, what="discord")
    return "discord"


def _send_ntfy(ws: Parts, t: Target, title: str, body: str, meta: dict[str, Any]) -> str:
    base = (t.url or DEFAULT_NTFY).rstrip("/")
    headers = {"Title": _ascii(title), "Markdown": "yes", **_bearer(ws, t)}
    _post(f"{base}/{t.to}", content=_clip(body, 4000), headers=headers, what="ntfy")
    return f"ntfy {t.to}"


def _send_telegram(ws: Parts, t: Target, title: str, body: str, meta: dict[str, Any]) -> str:
    name = t.secret or TELEGRAM_SECRET
    token = ws.secrets.resolve(name)
    if not token:
        raise DeliveryError(f"no Telegram bot token: set the secret {name} (copa secrets set {name})")
    base = (t.url or DEFAULT_TELEGRAM).rstrip("/")
    resp = _post(f"{base}/bot{token}/sendMessage",
                 json_body={"chat_id": t.to, "text": _clip(f"{title}\n\n{body}", 4096),
                            "disable_web_page_preview": True}, what="telegram")
    try:
        ok = resp.json().get("ok", False)
    except ValueError:
        ok = False
    if not ok:
        raise DeliveryError(f"telegram: the API did not accept the message: {resp.text.strip()[:200]}")
    return f"telegram {t.to}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode()  # HTTP header values must be latin-1 safe


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60] or "report"


SENDERS = {"file": _send_file, "stdout": _send_stdout, "notify": _send_notify, "email": _send_email,
           "webhook": _send_webhook, "slack": _send_slack, "discord": _send_discord, "ntfy": _send_ntfy,
           "telegram": _send_telegram}


def _senders() -> dict[str, Any]:
    """Every delivery channel, copa's own (``SENDERS``) and plugins', through ``copa_delivery_channels``."""
    from copa.plugins import merged

    return merged("copa_delivery_channels", "delivery channel")
