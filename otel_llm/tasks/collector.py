"""The agent side's link to the otel-llm collector: kill decisions in, inference spans
out promptly.

Kills. When ``OTEL_LLM_COLLECTOR_URL`` (or ``collector_url`` in the policy file) names
one or more collectors (comma-separated), one daemon thread per collector long-polls
``GET /v1/kills?after=CURSOR&wait=25`` (sending ``$OTEL_LLM_COLLECTOR_TOKEN`` as a bearer
token when set). Each decision is remembered (the newest 100,000 task ids); before every
model call :func:`apply_kills` marks a task of the call's chain that the collector killed,
and the call raises :class:`~otel_llm.tasks.budget.BudgetExceeded` whose reason names
the collector. The first poll asks for every decision the collector still holds, so a
process that joins a task after its kill learns it too. A collector that is down or
answers garbage is retried with exponential backoff (0.5 s doubling to 30 s, jittered)
and logged once per outage; nothing here ever blocks or fails a model call.

Prompt export. The OTLP batch span processor waits up to ``OTEL_BSP_SCHEDULE_DELAY``
(5 s by default) before exporting; a kill could then land many calls late. When our
instrumentation starts, a span processor is added to the SDK tracer provider that, when
an inference span ends, asks the provider to flush from a background thread at most
every ``OTEL_LLM_INFERENCE_EXPORT_DELAY`` milliseconds (default 100; ``0`` turns it
off). Other spans keep their usual batching; the model call never waits for the export.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from otel_llm.tasks import settings
from otel_llm.tasks.state import STATE

__all__ = [
    "ENV_COLLECTOR_TOKEN",
    "ENV_COLLECTOR_URL",
    "ENV_EXPORT_DELAY",
    "KillSubscriber",
    "apply_kills",
    "collector_urls",
    "connect",
]

logger = logging.getLogger("otel_llm.tasks.collector")

ENV_COLLECTOR_URL = "OTEL_LLM_COLLECTOR_URL"
ENV_COLLECTOR_TOKEN = "OTEL_LLM_COLLECTOR_TOKEN"
ENV_EXPORT_DELAY = "OTEL_LLM_INFERENCE_EXPORT_DELAY"

KILLS_KEPT = 100_000
LONG_POLL_SECONDS = 25.0
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0
_INFERENCE_KEYS = ("gen_ai.usage.input_tokens", "otel_llm.cost.usd")


def collector_urls() -> list[str]:
    """The collectors to follow: the environment, else the policy file's ``collector_url``."""
    raw = os.environ.get(ENV_COLLECTOR_URL, "").strip()
    if not raw:
        policy = settings.config().policy
        raw = (policy.collector_url or "") if policy is not None else ""
    return [url.strip().rstrip("/") for url in raw.split(",") if url.strip()]


def _remember(task_id: str, reason: str) -> None:
    kills = STATE.collector_kills
    with STATE.collector_lock:
        kills[task_id] = reason
        kills.move_to_end(task_id)
        while len(kills) > KILLS_KEPT:
            kills.popitem(last=False)


def apply_kills(chain: list[Any]) -> None:
    """Mark every task of ``chain`` the collector killed (called before a model call,
    only when some kill is known)."""
    kills = STATE.collector_kills
    for member in chain:
        reason = kills.get(member.task_id)
        if reason is not None and member.killed_reason is None:
            member.kill(reason)


class KillSubscriber:
    """Follows one collector's kill decisions; see the module docstring."""

    def __init__(self, url: str, token: str | None = None, *, wait: float = LONG_POLL_SECONDS) -> None:
        self.url = url
        self.token = token
        self.wait = wait
        self.cursor = 0
        self.connected = threading.Event()
        """Set once a poll has succeeded (tests and diagnostics)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"otel-llm-kills {url}", daemon=True)

    def start(self) -> KillSubscriber:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _poll(self, wait: float) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"after": self.cursor, "wait": wait})
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(f"{self.url}/v1/kills?{query}", headers=headers)
        with urllib.request.urlopen(request, timeout=wait + 10) as response:
            data = json.load(response)
        kills = data["kills"]
        if not isinstance(kills, list):
            raise ValueError("kills is not a list")
        cursor = int(data["cursor"])
        self.cursor = cursor if cursor >= 0 else self.cursor
        return kills

    def _run(self) -> None:
        delay = BACKOFF_INITIAL
        down = False
        wait = 0.0  # the first poll returns what the collector holds now
        while not self._stop.is_set():
            try:
                kills = self._poll(wait)
            except (OSError, urllib.error.URLError, ValueError, KeyError, TypeError) as exc:
                if not down:
                    logger.warning(
                        "cannot follow the kills of the otel-llm collector at %s (%s); retrying with backoff",
                        self.url,
                        exc,
                    )
                    down = True
                self._stop.wait(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            if down:
                logger.info("following the kills of the otel-llm collector at %s again", self.url)
            down = False
            delay = BACKOFF_INITIAL
            wait = self.wait
            for kill in kills:
                task_id = kill.get("task_id") if isinstance(kill, dict) else None
                if isinstance(task_id, str) and task_id:
                    reason = str(kill.get("reason") or "killed by the otel-llm collector")
                    _remember(task_id, f"{reason} (collector {self.url})")
            self.connected.set()


class _PromptExport(SpanProcessor):
    """Flushes the tracer provider soon after an inference span ends (see the module docstring)."""

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._providers: weakref.WeakSet[Any] = weakref.WeakSet()
        self._due = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def attach(self, provider: Any) -> None:
        with self._lock:
            if provider in self._providers:
                return
            self._providers.add(provider)
        provider.add_span_processor(self)

    def on_end(self, span: ReadableSpan) -> None:
        attributes = span.attributes
        if attributes is None or not any(key in attributes for key in _INFERENCE_KEYS):
            return
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="otel-llm-prompt-export", daemon=True
                    )
                    self._thread.start()
        self._due.set()

    def _run(self) -> None:
        while True:
            self._due.wait()
            time.sleep(self._delay)  # spans ending close together go in one export
            self._due.clear()
            for provider in list(self._providers):
                try:
                    provider.force_flush(timeout_millis=5000)
                except Exception:  # the telemetry path never breaks the agent
                    logger.debug("prompt export flush failed", exc_info=True)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _export_delay() -> float:
    raw = os.environ.get(ENV_EXPORT_DELAY, "").strip()
    if not raw:
        return 0.1
    try:
        return max(float(raw), 0.0) / 1000
    except ValueError:
        logger.warning("%s=%r is not a number of milliseconds; using 100", ENV_EXPORT_DELAY, raw)
        return 0.1


def connect(tracer_provider: trace.TracerProvider | None = None) -> None:
    """Start following the configured collectors (once per URL) and export inference
    spans promptly through ``tracer_provider`` (default: the tasks' provider)."""
    try:
        delay = _export_delay()
        provider = tracer_provider or settings.tracer_provider()
        if delay > 0 and hasattr(provider, "add_span_processor"):
            with STATE.collector_lock:
                if STATE.prompt_export is None:
                    STATE.prompt_export = _PromptExport(delay)
                prompt = STATE.prompt_export
            prompt.attach(provider)
        token = os.environ.get(ENV_COLLECTOR_TOKEN) or None
        for url in collector_urls():
            with STATE.collector_lock:
                if url in STATE.subscribers:
                    continue
                STATE.subscribers[url] = KillSubscriber(url, token).start()
    except Exception as exc:  # a bad URL or policy must not stop the agent's start-up here
        logger.warning("cannot connect to the otel-llm collector: %s", exc)
