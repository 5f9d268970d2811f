"""Budget alerts: warnings, kills and window budgets sent to a generic webhook, Slack and
Alertmanager, each once, without ever holding up span ingest.

The budget processor calls :meth:`Alerter.send` with a :class:`BudgetAlert`; ``send``
only checks the dedup set and hands the alert to a worker thread (a bounded hand-off:
when it is full the alert is dropped and counted, ``send`` never waits). The worker runs
its own asyncio loop with one delivery task per target, each with its own bounded queue,
so a slow or dead target delays nobody but itself.

Once per task and threshold
    Every alert has a :attr:`BudgetAlert.dedup_key`: the task (or the policy, group and
    window start of a window budget), the limit, the threshold and the kind. A key is
    sent once; the keys are remembered in ``<state_dir>/alerts.json`` (rewritten
    atomically, written *before* the first delivery attempt), so a restarted collector
    that sees the same task cross the same threshold again sends nothing. An alert still
    undelivered when the collector stops (or dies) is in that file too, with the targets
    it still owes, and is delivered when the next collector starts. Keys are forgotten
    after ``remember_for`` seconds (7 days; a window alert not before its window ends).

Delivery
    Each target is POSTed with a timeout per attempt (``alerts.timeout``); connection
    errors, timeouts, 408, 425, 429 and 5xx are retried up to ``alerts.retry.attempts``
    times with exponential backoff and jitter (the delay doubles from ``initial_backoff``
    up to ``max_backoff``, each drawn from [delay/2, delay]; a ``Retry-After`` is honoured
    within ``max_backoff``); any other answer is final. Alertmanager receives queued
    alerts in batches (its API takes a list). A target's first failure is logged once,
    at WARNING; later ones are not until it has delivered again (then once at INFO). URLs
    in logs are redacted to scheme and host: a Slack webhook URL is a secret.

HTTP client: aiohttp. It is already the collector's HTTP server, so alerts add no second
HTTP stack; its asyncio client keeps every target's request in flight on one thread, with
a timeout per request and cancellation at shutdown.

Payloads (one example of each in ``collector/README.md``):

* generic webhook: one JSON object per alert, ``"schema": "otel-llm.budget-alert/v1"``
  (fields: :func:`webhook_body`), with an ``Idempotency-Key`` header (the same for every
  retry of one alert) and any configured headers;
* Slack: an incoming-webhook message, ``text`` (the notification line) and ``blocks``
  (header, description, fields, a context line with the Grafana link);
* Alertmanager: ``POST {url}/api/v2/alerts`` with a list of alerts whose labels a
  routing tree can match: ``alertname`` (one per kind, see ``ALERTNAMES``), ``severity``
  (warning, critical, info), ``kind``, ``source="otel-llm"``, ``policy``, ``limit``,
  ``threshold``, ``task_id``, ``task_name``, ``service``, ``group``, ``window`` (those
  that are set); annotations ``summary``, ``description``, ``percent``, ``spent``,
  ``value``, ``dashboard_url``; ``startsAt`` the alert time; ``endsAt`` the end of the
  window for a window alert, else ``resolve_after`` later (an alert is sent once, so
  Alertmanager resolves it by itself rather than waiting for a resend that never comes).

Link to the task in Grafana: ``link_template`` (the collector config's
``alerts.link_template``), default :data:`DEFAULT_LINK_TEMPLATE`. Placeholders, each URL
encoded: ``{task_id}``, ``{task_name}``, ``{service}``, ``{group}``, ``{policy}``,
``{limit}``, ``{kind}``, ``{window}``, and ``{from_ms}``/``{to_ms}`` (a time range around
the alert: the window for a window alert, else an hour before to ten minutes after).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import aiohttp

from otel_llm import __version__
from otel_llm.collector.selfmetrics import SelfMetrics
from otel_llm.policy import Alerts, duration_seconds, redact_url

__all__ = [
    "ALERTNAMES",
    "ALERT_KINDS",
    "DEFAULT_LINK_TEMPLATE",
    "PAYLOAD_SCHEMA",
    "STATE_FILE",
    "AlertKind",
    "Alerter",
    "BudgetAlert",
    "alertmanager_alert",
    "description",
    "render_link",
    "slack_body",
    "title",
    "webhook_body",
]

logger = logging.getLogger(__name__)

AlertKind = Literal["warn", "kill", "alert", "window_warn", "window_exceeded", "manual_kill"]
ALERT_KINDS: tuple[str, ...] = ("warn", "kill", "alert", "window_warn", "window_exceeded", "manual_kill")

ALERTNAMES: dict[str, str] = {
    "warn": "LLMTaskBudgetWarning",
    "kill": "LLMTaskKilled",
    "alert": "LLMTaskBudgetExceeded",
    "window_warn": "LLMWindowBudgetWarning",
    "window_exceeded": "LLMWindowBudgetExceeded",
    "manual_kill": "LLMTaskKilledManually",
}
SEVERITIES: dict[str, str] = {
    "warn": "warning",
    "kill": "critical",
    "alert": "critical",
    "window_warn": "warning",
    "window_exceeded": "critical",
    "manual_kill": "info",
}
_TITLES: dict[str, str] = {
    "warn": "Budget warning",
    "kill": "Task killed",
    "alert": "Budget exceeded",
    "window_warn": "Window budget warning",
    "window_exceeded": "Window budget exceeded",
    "manual_kill": "Task killed by hand",
}
_SLACK_EMOJI: dict[str, str] = {
    "warn": ":warning:",
    "kill": ":octagonal_sign:",
    "alert": ":rotating_light:",
    "window_warn": ":warning:",
    "window_exceeded": ":rotating_light:",
    "manual_kill": ":no_entry:",
}
_UNITS: dict[str, str] = {
    "max_usd": "USD",
    "max_tokens": "tokens",
    "max_iterations": "calls",
    "max_seconds": "seconds",
    "max_tool_calls": "tool calls",
}

PAYLOAD_SCHEMA = "otel-llm.budget-alert/v1"
DEFAULT_LINK_TEMPLATE = (
    "http://localhost:3000/d/otel-llm-tasks?var-task_id={task_id}&from={from_ms}&to={to_ms}"
)
LINK_PLACEHOLDERS: tuple[str, ...] = (
    "task_id",
    "task_name",
    "service",
    "group",
    "policy",
    "limit",
    "kind",
    "window",
    "from_ms",
    "to_ms",
)
STATE_FILE = "alerts.json"
_STATE_VERSION = 1
DEFAULT_REMEMBER_FOR = 7 * 86400.0
DEFAULT_MAX_REMEMBERED = 100_000
_ALERTMANAGER_PATH = "/api/v2/alerts"
_ALERTMANAGER_BATCH = 64
_RETRYABLE_STATUS = frozenset({408, 425, 429})
_SAVE_DELAY = 1.0


# -- the alert -------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetAlert:
    """One budget event worth telling people about."""

    kind: AlertKind
    policy: str
    """Policy name ("" for a manual kill)."""
    limit: str
    """``max_usd`` | ``max_tokens`` | ``max_iterations`` | ``max_seconds`` | ``max_tool_calls``."""
    spent: float
    """Amount used when it fired, in the limit's unit."""
    value: float
    """The limit's value."""
    threshold: float
    """Fraction that fired it: ``warn_at`` (e.g. 0.8) or 1.0."""
    task_id: str | None = None
    """``None`` for window alerts."""
    task_name: str | None = None
    service: str | None = None
    group: str | None = None
    """Window budgets: ``tenant=acme``."""
    window: str | None = None
    """Window budgets: ``1d``."""
    window_start: float | None = None
    """Window budgets: unix seconds."""
    at: float = 0.0
    """Unix seconds; 0 = when :meth:`Alerter.send` is called."""

    @property
    def percent(self) -> float:
        """``spent`` as a percentage of ``value`` (0 when there is no limit value)."""
        return self.spent / self.value * 100.0 if self.value > 0 else 0.0

    @property
    def dedup_key(self) -> str:
        """One key per task (or policy, group and window start), limit, threshold and kind."""
        if self.task_id is None and (self.group is not None or self.window_start is not None):
            subject = f"window:{self.policy}:{self.group or ''}@{self.window_start or 0:.3f}"
        else:
            subject = f"task:{self.task_id or ''}"
        return f"{subject}|{self.limit}|{self.threshold:g}|{self.kind}"

    @property
    def window_end(self) -> float | None:
        """Unix seconds when the window of a window alert ends."""
        if self.window_start is None or self.window is None:
            return None
        seconds = duration_seconds(self.window)
        return None if seconds is None else self.window_start + seconds


def _alert_from_dict(data: Mapping[str, Any]) -> BudgetAlert:
    known = {f.name for f in fields(BudgetAlert)}
    return BudgetAlert(**{key: value for key, value in data.items() if key in known})


# -- what the alert says ---------------------------------------------------------------


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if not float(value).is_integer() else f"{int(value)}"


def _plain(value: float) -> str:
    """Every digit of ``value``, without a trailing ``.0``."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _amount(limit: str, value: float) -> str:
    if limit == "max_usd":
        # Up to 4 decimals, more for amounts under a cent (at least 3 significant digits).
        decimals = 4 if value >= 0.01 or value <= 0 else min(10, max(4, 2 - math.floor(math.log10(value))))
        text = f"{value:,.{decimals}f}".rstrip("0")
        if len(text.partition(".")[2]) < 2:
            text = f"{value:,.2f}"
        return f"${text}"
    if limit in ("max_tokens", "max_iterations", "max_tool_calls"):
        return f"{round(value):,} {_UNITS[limit]}"
    if limit == "max_seconds":
        return f"{_number(value)} s"
    return _number(value)


def _percent_text(alert: BudgetAlert) -> str:
    return f"{alert.percent:.1f}".rstrip("0").rstrip(".") + "%"


def _subject(alert: BudgetAlert, *, short: bool) -> str:
    if alert.task_id is None and alert.group is not None:
        return alert.group if short else f"group {alert.group}"
    name = alert.task_name or alert.task_id or "unknown task"
    if short:
        return name
    if alert.task_name and alert.task_id:
        return f'task "{alert.task_name}" ({alert.task_id})'
    return f"task {name}"


def title(alert: BudgetAlert) -> str:
    """One short line: what happened to whom (``Task killed: fix-bug``)."""
    return f"{_TITLES[alert.kind]}: {_subject(alert, short=True)}"


def description(alert: BudgetAlert) -> str:
    """A sentence or two with the numbers, the policy and what happens next."""
    subject = _subject(alert, short=False)
    subject = subject[0].upper() + subject[1:]
    policy = f" under policy {alert.policy}" if alert.policy else ""
    window = f" {alert.window}" if alert.window else ""
    used = ""
    if alert.limit and alert.value > 0:
        used = (
            f"{_amount(alert.limit, alert.spent)} of its{window} {alert.limit} limit of "
            f"{_amount(alert.limit, alert.value)} ({_percent_text(alert)})"
        )
    if alert.kind == "manual_kill":
        text = f"{subject} was killed by hand through the control API."
        return f"{text} It had used {used}." if used else text
    if alert.kind in ("warn", "window_warn"):
        return (
            f"{subject} has used {used}{policy}, past the warning threshold of "
            f"{_number(alert.threshold * 100)}%."
        )
    tails = {
        "kill": " The task is stopped: its next model call raises BudgetExceeded.",
        "alert": " The policy only alerts (on_exceed: alert): the task goes on.",
        "window_exceeded": "",
    }
    return f"{subject} has used {used}{policy}.{tails[alert.kind]}"


def _time_range_ms(alert: BudgetAlert) -> tuple[int, int]:
    end = alert.window_end
    if alert.window_start is not None and end is not None:
        return int(alert.window_start * 1000), int(end * 1000)
    return int((alert.at - 3600) * 1000), int((alert.at + 600) * 1000)


def render_link(template: str, alert: BudgetAlert) -> str:
    """``template`` with the alert's values (URL encoded); raises ``ValueError`` naming an
    unknown placeholder."""
    start, end = _time_range_ms(alert)
    values: dict[str, str] = {
        "task_id": alert.task_id or "",
        "task_name": alert.task_name or "",
        "service": alert.service or "",
        "group": alert.group or "",
        "policy": alert.policy,
        "limit": alert.limit,
        "kind": alert.kind,
        "window": alert.window or "",
    }
    encoded = {key: quote(value, safe="") for key, value in values.items()}
    encoded["from_ms"], encoded["to_ms"] = str(start), str(end)
    try:
        return template.format_map(encoded)
    except KeyError as exc:
        raise ValueError(
            f"alerts.link_template: unknown placeholder {{{exc.args[0]}}}; "
            f"expected some of {', '.join('{' + p + '}' for p in LINK_PLACEHOLDERS)}"
        ) from None
    except (ValueError, IndexError) as exc:
        raise ValueError(f"alerts.link_template: not a valid template: {exc}") from None


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def webhook_body(alert: BudgetAlert, link: str | None) -> dict[str, Any]:
    """The generic webhook's JSON object (schema ``otel-llm.budget-alert/v1``)."""
    window = None
    if alert.window is not None or alert.window_start is not None:
        end = alert.window_end
        window = {
            "name": alert.window,
            "start": _iso(alert.window_start) if alert.window_start is not None else None,
            "end": _iso(end) if end is not None else None,
        }
    task = None
    if alert.task_id is not None or alert.task_name is not None:
        task = {"id": alert.task_id, "name": alert.task_name}
    return {
        "schema": PAYLOAD_SCHEMA,
        "kind": alert.kind,
        "severity": SEVERITIES[alert.kind],
        "title": title(alert),
        "description": description(alert),
        "policy": alert.policy or None,
        "limit": alert.limit or None,
        "unit": _UNITS.get(alert.limit),
        "spent": float(alert.spent),
        "value": float(alert.value),
        "threshold": float(alert.threshold),
        "percent": round(alert.percent, 2),
        "task": task,
        "service": alert.service,
        "group": alert.group,
        "window": window,
        "at": _iso(alert.at),
        "link": link,
        "dedup_key": alert.dedup_key,
    }


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats &, < and > as control characters; everything else is literal.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(alert: BudgetAlert, link: str | None) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (notification) and Block Kit ``blocks``."""
    head = title(alert)
    fields_: list[tuple[str, str]] = []
    if alert.limit and alert.value > 0:
        fields_ += [
            ("Spent", _amount(alert.limit, alert.spent)),
            ("Limit", f"{alert.limit} {_amount(alert.limit, alert.value)}"),
            ("Used", _percent_text(alert)),
        ]
    for label, value in (
        ("Policy", alert.policy),
        ("Task", alert.task_id),
        ("Service", alert.service),
        ("Group", alert.group),
        ("Window", alert.window),
    ):
        if value:
            fields_.append((label, value))
    # Slack shows the time in each reader's own time zone; the fallback is UTC.
    shown_at = datetime.fromtimestamp(alert.at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    context = f"otel-llm · <!date^{int(alert.at)}^{{date_short_pretty}} {{time_secs}}|{shown_at}>"
    if link:
        context = f"<{link}|Open in Grafana> · {context}"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"{_SLACK_EMOJI[alert.kind]} {head}"[:150], "emoji": True},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(description(alert))[:3000]}},
    ]
    if fields_:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{label}*\n{_slack_escape(value)}"[:2000]}
                    for label, value in fields_[:10]
                ],
            }
        )
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    summary = head
    if alert.limit and alert.value > 0:
        summary += (
            f": {_amount(alert.limit, alert.spent)} of {_amount(alert.limit, alert.value)} "
            f"{alert.limit} ({_percent_text(alert)})"
        )
    return {"text": _slack_escape(summary), "blocks": blocks}


def alertmanager_alert(alert: BudgetAlert, link: str | None, *, resolve_after: float) -> dict[str, Any]:
    """One entry of the list ``POST /api/v2/alerts`` takes."""
    labels = {
        "alertname": ALERTNAMES[alert.kind],
        "severity": SEVERITIES[alert.kind],
        "kind": alert.kind,
        "source": "otel-llm",
        "policy": alert.policy,
        "limit": alert.limit,
        "threshold": f"{alert.threshold:g}",
        "task_id": alert.task_id or "",
        "task_name": alert.task_name or "",
        "service": alert.service or "",
        "group": alert.group or "",
        "window": alert.window or "",
    }
    annotations = {
        "summary": title(alert),
        "description": description(alert),
        "percent": f"{alert.percent:.2f}",
        "spent": _plain(alert.spent),
        "value": _plain(alert.value),
        "dashboard_url": link or "",
    }
    ends = alert.window_end if alert.window_end is not None else alert.at + resolve_after
    body: dict[str, Any] = {
        # An empty label is the same as no label to Alertmanager: leave them out.
        "labels": {key: value for key, value in labels.items() if value},
        "annotations": {key: value for key, value in annotations.items() if value},
        "startsAt": _iso(alert.at),
        "endsAt": _iso(max(ends, alert.at + 1.0)),
    }
    if link:
        body["generatorURL"] = link
    return body


# -- targets ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Target:
    name: str
    url: str
    """Where to POST."""
    shown: str
    """``url`` redacted, for logs."""
    headers: Mapping[str, str]
    batch: int
    """Alerts per request (Alertmanager takes a list)."""


def _targets(alerts: Alerts) -> list[_Target]:
    out = []
    if alerts.webhook_url:
        url = alerts.webhook_url
        out.append(_Target("webhook", url, redact_url(url), dict(alerts.webhook_headers), 1))
    if alerts.slack_url:
        url = alerts.slack_url
        out.append(_Target("slack", url, redact_url(url), {}, 1))
    if alerts.alertmanager_url:
        base = alerts.alertmanager_url.rstrip("/")
        url = base if base.endswith(_ALERTMANAGER_PATH) else base + _ALERTMANAGER_PATH
        headers = dict(alerts.alertmanager_headers)
        out.append(_Target("alertmanager", url, redact_url(url), headers, _ALERTMANAGER_BATCH))
    return out


@dataclass(frozen=True, slots=True)
class _Outcome:
    ok: bool
    retry: bool = False
    retry_after: float | None = None
    detail: str = ""


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    with contextlib.suppress(ValueError):
        seconds = float(value)
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    return None  # an HTTP date: rare for webhooks; the computed backoff applies


# -- what was sent (persisted) ---------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    at: float
    expires: float
    pending: list[str]
    alert: BudgetAlert | None
    """Kept while some target still owes it (replayed after a restart)."""


def _entry_to_json(entry: _Entry) -> dict[str, Any]:
    out: dict[str, Any] = {"at": entry.at, "expires": entry.expires}
    if entry.pending and entry.alert is not None:
        out["pending"] = entry.pending
        out["alert"] = asdict(entry.alert)
    return out


def _load_state(path: Path) -> dict[str, _Entry]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        logger.warning("otel-llm alerts: cannot read %s (%s); earlier alerts may be sent again", path, exc)
        return {}
    try:
        data = json.loads(text)
        if data.get("version") != _STATE_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {_STATE_VERSION}")
        out = {}
        for key, raw in data["alerts"].items():
            alert = _alert_from_dict(raw["alert"]) if "alert" in raw else None
            out[key] = _Entry(float(raw["at"]), float(raw["expires"]), list(raw.get("pending", [])), alert)
        return out
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        aside = path.with_suffix(".json.corrupt")
        with contextlib.suppress(OSError):
            os.replace(path, aside)
        logger.warning(
            "otel-llm alerts: %s is not a valid alerts state file (%s); moved to %s and starting "
            "afresh: alerts sent before may be sent again",
            path,
            exc,
            aside.name,
        )
        return {}


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    # The rename itself must survive a crash too.
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the alerter -----------------------------------------------------------------------


class Alerter:
    """Sends :class:`BudgetAlert` s to the targets of ``alerts``, each alert once.

    ``start()`` starts the worker thread; ``send()`` never blocks (call it from the ingest
    path); ``close()`` delivers what it can within ``timeout`` and keeps the rest in the
    state file for the next start. Alerts sent before ``start()`` wait for it.
    """

    def __init__(
        self,
        alerts: Alerts,
        *,
        state_dir: Path,
        link_template: str | None,
        metrics: SelfMetrics | None = None,
        remember_for: float = DEFAULT_REMEMBER_FOR,
        max_remembered: int = DEFAULT_MAX_REMEMBERED,
    ) -> None:
        # ${NAME} in URLs and headers: a missing variable fails here, at start-up.
        alerts = alerts.expanded()
        self._alerts = alerts
        self._link_template = link_template or DEFAULT_LINK_TEMPLATE
        # A bad template fails here, at start-up, not in the first alert.
        render_link(self._link_template, BudgetAlert("warn", "p", "max_usd", 1.0, 2.0, 0.5, "t", at=1.0))
        self._metrics = metrics if metrics is not None else SelfMetrics()
        self._remember_for = remember_for
        self._max_remembered = max_remembered
        self._path = Path(state_dir) / STATE_FILE
        self._targets = _targets(alerts)
        self._random = random.Random()

        self._entries = _load_state(self._path)  # the loop thread's after start()
        self._lock = threading.Lock()
        self._claimed: set[str] = set(self._entries)  # guarded by _lock: what send() checks
        self._handoff = 0  # guarded by _lock: alerts passed to the loop, not yet accepted
        self._closed = False
        self._unknown_kinds: set[str] = set()

        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._queues: dict[str, asyncio.Queue[BudgetAlert]] = {
            t.name: asyncio.Queue(maxsize=alerts.queue_size) for t in self._targets
        }
        self._accepted: list[BudgetAlert] = []
        self._flush_scheduled = False
        self._later: asyncio.TimerHandle | None = None
        # Made here (asyncio binds it to the loop on first use) so close() right after
        # start() cannot miss it.
        self._stopping = asyncio.Event()
        self._stop_deadline = 0.0
        self._failing: dict[str, bool] = {t.name: False for t in self._targets}
        self._save_failing = False

        for target in self._targets:
            for counter in (
                self._metrics.alerts_sent,
                self._metrics.alerts_failed,
                self._metrics.alerts_dropped,
                self._metrics.alert_retries,
            ):
                counter.labels(target=target.name)
        self._metrics.alerts_dropped.labels(target="all")
        self._gauge = self._metrics.queue_depth.labels(queue="alerts")

    @property
    def targets(self) -> tuple[str, ...]:
        """The configured targets' names."""
        return tuple(t.name for t in self._targets)

    @property
    def state_path(self) -> Path:
        return self._path

    def link(self, alert: BudgetAlert) -> str:
        """The Grafana link of ``alert``."""
        return render_link(self._link_template, alert)

    # -- caller side (any thread) --

    def start(self) -> None:
        """Start the worker thread; replays alerts a previous run left undelivered."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="otel-llm-alerts", daemon=True)
        self._thread.start()

    def send(self, alert: BudgetAlert) -> None:
        """Queue ``alert`` for every target unless its dedup key was sent already. Never
        blocks and never raises: a full hand-off queue drops the alert (counted)."""
        if alert.kind not in ALERT_KINDS:
            if alert.kind not in self._unknown_kinds:
                self._unknown_kinds.add(alert.kind)
                logger.error(
                    "otel-llm alerts: unknown alert kind %r dropped; expected one of %s",
                    alert.kind,
                    ", ".join(ALERT_KINDS),
                )
            self._metrics.alerts_dropped.labels(target="all").inc()
            return
        if alert.at <= 0:
            alert = replace(alert, at=time.time())
        key = alert.dedup_key
        with self._lock:
            if key in self._claimed:
                self._metrics.alerts_deduplicated.inc()
                return
            if self._closed or self._handoff >= self._alerts.queue_size or not self._targets:
                if self._targets:
                    self._metrics.alerts_dropped.labels(target="all").inc()
                return
            self._claimed.add(key)
            self._handoff += 1
            self._gauge.inc()
            # Under the lock: close() cannot close the loop between the check and this.
            self._loop.call_soon_threadsafe(self._accept, alert)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what can be delivered within ``timeout`` seconds, save the state, stop."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._thread is None:
            self._loop.close()
            return
        self._loop.call_soon_threadsafe(self._begin_stop, timeout)
        self._thread.join(timeout + 5.0)
        if self._thread.is_alive():
            logger.warning("otel-llm alerts: the delivery thread did not stop within %.1f s", timeout + 5.0)

    # -- loop thread --

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except Exception:
            logger.exception("otel-llm alerts: the delivery thread failed; no more alerts are sent")
        finally:
            with self._lock:
                # send() checks this under the lock before it touches the loop.
                self._closed = True
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _main(self) -> None:
        headers = {"User-Agent": f"otel-llm/{__version__}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            workers = [
                asyncio.create_task(self._work(session, target), name=f"alerts-{target.name}")
                for target in self._targets
            ]
            self._replay()
            await self._stopping.wait()
            done_by = self._stop_deadline
            # Let each target finish what is queued (no more retries), then cancel the rest.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained(), max(0.0, done_by - time.monotonic()))
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        # What arrived meanwhile is saved as owed: the next collector delivers it.
        self._flush(dispatch=False)

    def _begin_stop(self, timeout: float) -> None:
        self._stop_deadline = time.monotonic() + timeout
        self._stopping.set()

    async def _drained(self) -> None:
        for queue in self._queues.values():
            await queue.join()

    def _replay(self) -> None:
        configured = set(self._queues)
        for key, entry in list(self._entries.items()):
            if not entry.pending or entry.alert is None:
                continue
            entry.pending = [name for name in entry.pending if name in configured]
            for name in list(entry.pending):
                self._enqueue(name, key, entry)
            if not entry.pending:
                entry.alert = None
        self._schedule_flush()

    def _accept(self, alert: BudgetAlert) -> None:
        with self._lock:
            self._handoff -= 1
        self._gauge.dec()
        self._accepted.append(alert)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _schedule_flush_later(self) -> None:
        # A finished delivery need not reach the disk at once (lost, it only means one
        # repeat after a crash): coalesce those writes, one a second at most.
        if self._later is None and not self._flush_scheduled:
            self._later = self._loop.call_later(_SAVE_DELAY, self._flush)

    def _flush(self, dispatch: bool = True) -> None:
        """Record newly accepted alerts and deliveries in the state file, then hand the new
        alerts to their targets: a key is on disk before its first delivery attempt."""
        self._flush_scheduled = False
        if self._later is not None:
            self._later.cancel()
            self._later = None
        accepted, self._accepted = self._accepted, []
        now = time.time()
        for alert in accepted:
            end = alert.window_end
            expires = max(alert.at, now) + self._remember_for
            if end is not None:
                expires = max(expires, end + 86400.0)
            self._entries[alert.dedup_key] = _Entry(alert.at, expires, list(self._queues), alert)
        self._prune(now)
        self._save()
        if not dispatch:
            return
        for alert in accepted:
            key = alert.dedup_key
            entry = self._entries.get(key)
            if entry is None:
                continue
            for name in list(entry.pending):
                self._enqueue(name, key, entry)

    def _enqueue(self, name: str, key: str, entry: _Entry) -> None:
        queue = self._queues[name]
        assert entry.alert is not None
        if queue.full():
            self._metrics.alerts_dropped.labels(target=name).inc()
            self._done(key, name)
            return
        queue.put_nowait(entry.alert)
        self._gauge.inc()

    def _done(self, key: str, target: str) -> None:
        entry = self._entries.get(key)
        if entry is None or target not in entry.pending:
            return
        entry.pending.remove(target)
        if not entry.pending:
            entry.alert = None
        self._schedule_flush_later()

    def _prune(self, now: float) -> None:
        expired = [key for key, entry in self._entries.items() if entry.expires < now and not entry.pending]
        over = len(self._entries) - len(expired) - self._max_remembered
        if over > 0:
            # Over the cap: forget the delivered keys that would expire soonest.
            rest = sorted(
                (entry.expires, key)
                for key, entry in self._entries.items()
                if not entry.pending and entry.expires >= now
            )
            expired += [key for _, key in rest[:over]]
        if not expired:
            return
        for key in expired:
            del self._entries[key]
        with self._lock:
            self._claimed.difference_update(expired)

    def _save(self) -> None:
        data = {
            "version": _STATE_VERSION,
            "alerts": {key: _entry_to_json(entry) for key, entry in self._entries.items()},
        }
        try:
            _write_atomically(self._path, json.dumps(data, separators=(",", ":")))
        except OSError as exc:
            # Alerts still go out; only the memory of them across a restart is at risk.
            if not self._save_failing:
                self._save_failing = True
                logger.warning(
                    "otel-llm alerts: cannot write %s (%s); alerts go on, but a restart may repeat them",
                    self._path,
                    exc,
                )
            return
        if self._save_failing:
            self._save_failing = False
            logger.info("otel-llm alerts: %s written again", self._path)

    async def _work(self, session: aiohttp.ClientSession, target: _Target) -> None:
        queue = self._queues[target.name]
        while True:
            batch = [await queue.get()]
            while len(batch) < target.batch and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                delivered = await self._deliver(session, target, batch)
            except Exception:
                # A bug here must not end this target's deliveries for good.
                logger.exception("otel-llm alerts: cannot deliver to the %s target", target.name)
                delivered = False
            finally:
                self._gauge.dec(len(batch))
                for _ in batch:
                    queue.task_done()
            if delivered is not None:
                for alert in batch:
                    self._done(alert.dedup_key, target.name)
                counter = self._metrics.alerts_sent if delivered else self._metrics.alerts_failed
                counter.labels(target=target.name).inc(len(batch))

    def _body(self, target: _Target, batch: list[BudgetAlert]) -> Any:
        if target.name == "alertmanager":
            return [
                alertmanager_alert(a, self.link(a), resolve_after=self._alerts.resolve_after) for a in batch
            ]
        (alert,) = batch
        if target.name == "slack":
            return slack_body(alert, self.link(alert))
        return webhook_body(alert, self.link(alert))

    async def _deliver(
        self, session: aiohttp.ClientSession, target: _Target, batch: list[BudgetAlert]
    ) -> bool | None:
        """True: delivered; False: given up; None: stopped before it was (stays pending)."""
        body = json.dumps(self._body(target, batch), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", **target.headers}
        if target.name == "webhook":
            headers["Idempotency-Key"] = hashlib.sha256(batch[0].dedup_key.encode()).hexdigest()[:32]
        attempts = self._alerts.attempts
        for attempt in range(1, attempts + 1):
            outcome = await self._post(session, target, body, headers)
            if outcome.ok:
                if self._failing[target.name]:
                    self._failing[target.name] = False
                    logger.info("otel-llm alerts: %s target %s delivers again", target.name, target.shown)
                return True
            if not self._failing[target.name]:
                self._failing[target.name] = True
                logger.warning(
                    "otel-llm alerts: %s target %s failed: %s (%s); further failures of this target "
                    "are not logged until it delivers again",
                    target.name,
                    target.shown,
                    outcome.detail,
                    f"retrying up to {attempts - attempt} more times" if outcome.retry else "not retried",
                )
            if not outcome.retry or attempt == attempts:
                return False
            if self._stopping.is_set():
                return None  # the next collector tries again
            self._metrics.alert_retries.labels(target=target.name).inc()
            delay = min(self._alerts.max_backoff, self._alerts.initial_backoff * 2 ** (attempt - 1))
            delay = self._random.uniform(delay / 2, delay)
            if outcome.retry_after is not None:
                delay = min(self._alerts.max_backoff, max(delay, outcome.retry_after))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
                return None  # stopping: the next collector retries it
        return False

    async def _post(
        self, session: aiohttp.ClientSession, target: _Target, body: bytes, headers: Mapping[str, str]
    ) -> _Outcome:
        timeout = aiohttp.ClientTimeout(total=self._alerts.timeout)
        try:
            async with session.post(
                target.url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                if 200 <= response.status < 300:
                    return _Outcome(True)
                text = (await response.text(errors="replace"))[:200].strip()
                detail = f"HTTP {response.status}" + (f" {text}" if text else "")
                retry = response.status in _RETRYABLE_STATUS or response.status >= 500
                return _Outcome(False, retry, _retry_after(response.headers.get("Retry-After")), detail)
        except TimeoutError:
            return _Outcome(False, True, detail=f"no answer within {self._alerts.timeout:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            text = str(exc).replace(target.url, target.shown)
            return _Outcome(False, True, detail=f"{type(exc).__name__}: {text}")
        except ValueError as exc:  # e.g. a header value aiohttp refuses: retrying cannot help
            text = str(exc).replace(target.url, target.shown)
            return _Outcome(False, False, detail=f"{type(exc).__name__}: {text}")
