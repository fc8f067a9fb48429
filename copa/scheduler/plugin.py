"""Jobs and reports as a plugin of copa: scheduler/reports/smtp keys, [delivery.NAME], the tables,
the delivery channels and the report sections."""

from __future__ import annotations

from typing import Any

from copa.config import Key
from copa.plugins import hookimpl


@hookimpl
def copa_config_keys() -> dict[str, Any]:
    from copa.plugins import merged

    kinds = tuple(merged("copa_delivery_channels", "delivery channel"))
    return {
        "scheduler.timezone": Key(str, "", "Default zone of new jobs; empty = general.timezone, then the system's"),
        "scheduler.misfire_grace": Key(int, 300, "Seconds a late run may still start (suspend, busy workers)"),
        "scheduler.catch_up": Key(bool, True, "After downtime, run a job whose time passed once, at daemon start"),
        "scheduler.retries": Key(int, 2, "Extra attempts when a job fails (per job: schedule add --retries)"),
        "scheduler.retry_delay": Key(float, 60.0, "Seconds between attempts of a failed job"),
        "scheduler.delivery_retries": Key(int, 2, "Extra attempts when a delivery fails"),
        "scheduler.delivery_retry_delay": Key(float, 2.0, "Seconds before the first delivery retry (doubles)"),
        "scheduler.stop_timeout": Key(float, 10.0, "On SIGTERM, seconds to let running jobs finish"),
        "scheduler.poll_interval": Key(float, 0.5, "Seconds between the daemon's checks for job changes"),
        "scheduler.max_workers": Key(int, 4, "Jobs the daemon runs at the same time"),
        "reports.summary_model": Key(str, "fast", "Model for the summary paragraph atop a report; empty = none"),
        "reports.skills": Key(list, [], "Skills whose results the {{skills}} section shows ('name k=v ...')"),
        "reports.calendars": Key(list, [], "Calendars (.ics paths or URLs) for the calendar section of reports"),
        "smtp.host": Key(str, "", "SMTP server for email delivery"),
        "smtp.port": Key(int, 587, "SMTP port (587 = submission with STARTTLS)"),
        "smtp.starttls": Key(bool, True, "Upgrade the SMTP connection with STARTTLS (refuse if not offered)"),
        "smtp.username": Key(str, "", "SMTP login; empty = no login"),
        "smtp.password_secret": Key(str, "SMTP_PASSWORD", "Name of the secret holding the SMTP password"),
        "smtp.sender": Key(str, "", "From address of report emails; empty = smtp.username"),
        "smtp.ca_file": Key(str, "", "CA bundle to verify the SMTP server; empty = the system's"),
        "smtp.timeout": Key(float, 30.0, "Seconds before an SMTP operation gives up"),
        # [delivery.NAME]: a named target for reports and jobs (`--to NAME`); see docs/scheduler.md
        "delivery.NAME": {
            "kind": Key(str, "file", "Where it goes", kinds),
            "to": Key(str, "", "Path (file), address (email), chat id (telegram) or topic (ntfy)"),
            "url": Key(str, "", "Webhook URL, or the server/API base (ntfy, telegram)"),
            "secret": Key(str, "", "Name of a secret: telegram bot token, ntfy token, webhook bearer token, "
                          "slack/discord URL"),
        },
    }


@hookimpl
def copa_migrations() -> list:
    from copa.scheduler.migrations import MIGRATIONS

    return MIGRATIONS


@hookimpl
def copa_delivery_channels() -> dict[str, Any]:
    from copa.scheduler.delivery import SENDERS

    return dict(SENDERS)


@hookimpl
def copa_report_sections() -> dict[str, Any]:
    from copa.scheduler.sections import SECTIONS

    return dict(SECTIONS)
