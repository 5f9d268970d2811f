"""The collector service: receiver -> budget processor -> exporters, the control API,
restart recovery and alerts, wired together.

    collector = Collector(load_config("collector/config.yaml"))
    collector.start()          # serves in background threads
    ...
    collector.stop()

``otel-llm collector`` runs :func:`run` (foreground, until SIGINT/SIGTERM).
"""

from __future__ import annotations

import asyncio
import logging
import signal as signals
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web
from google.protobuf.message import Message

from otel_llm.collector.alerts import Alerter, BudgetAlert
from otel_llm.collector.config import Config
from otel_llm.collector.control import control_routes
from otel_llm.collector.decisions import Decision, KillLog
from otel_llm.collector.exporters import OtlpForwarder, StorageExporter
from otel_llm.collector.otlp import Signal, from_export_request
from otel_llm.collector.processor import ALERT_KIND, BudgetProcessor
from otel_llm.collector.receiver import ExportResult, Overloaded, check_token, http_routes, start_grpc
from otel_llm.collector.selfmetrics import SelfMetrics
from otel_llm.collector.state import StateStore
from otel_llm.policy import BudgetConfig, config_from_env, load_policy_file
from otel_llm.storage.errors import StorageError
from otel_llm.storage.records import BudgetEventRecord

__all__ = ["Collector", "run"]

log = logging.getLogger("otel_llm.collector")


def budgets_of(config: Config) -> BudgetConfig:
    """The policy file the config names, else what the environment says (``OTEL_LLM_BUDGETS``)."""
    path = config.processors.budget.policy_file
    if path:
        return BudgetConfig(policy=load_policy_file(path))
    return config_from_env()


class Collector:
    """One collector: see the module docstring. Ports ``:0`` pick free ones
    (:attr:`http_url`, :attr:`grpc_endpoint` tell which)."""

    def __init__(self, config: Config | None = None, *, budgets: BudgetConfig | None = None) -> None:
        self.config = config or Config()
        self.config.validate()
        self.budgets = budgets if budgets is not None else budgets_of(self.config)
        self.token = self.config.auth.token()
        self.kill_log = KillLog(self.config.control.kill_log_size)
        self.processor = BudgetProcessor(self.config.processors.budget, self.budgets, self.kill_log)
        self.state = StateStore(self.config.state.dir, self.config.state.snapshot_interval)
        self.storage: StorageExporter | None = None
        self.forwarder: OtlpForwarder | None = None
        self.alerter: Any = None
        self.metrics_registry = SelfMetrics()
        self._synced: dict[str, int] = {}
        otlp = self.config.receivers.otlp
        self._inflight = threading.BoundedSemaphore(otlp.max_concurrent_requests)
        self._executor = ThreadPoolExecutor(
            otlp.max_concurrent_requests, thread_name_prefix="otel-llm-ingest"
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._grpc: Any = None
        self.http_url = ""
        self.grpc_endpoint = ""
        self.recovered: dict[str, int] = {}

    # -- life cycle -----------------------------------------------------------------

    def start(self) -> Collector:
        self.recovered = self.state.recover(self.processor)
        self.processor.journal = self.state.record
        if self.config.exporters.storage:
            self.storage = StorageExporter.open(self.config.storage, self._inserted)
        if self.config.exporters.otlp.endpoint:
            self.forwarder = OtlpForwarder(self.config.exporters.otlp)
        self.alerter = self._open_alerter()
        self.state.start(self.processor)
        otlp = self.config.receivers.otlp
        if otlp.grpc.enabled:
            self._grpc, port = start_grpc(otlp, self, self.token, self._grpc_refused)
            host = otlp.grpc.host_port()[0]
            self.grpc_endpoint = f"{host}:{port}"
        if otlp.http.enabled:
            started = threading.Event()
            failure: list[BaseException] = []
            self._thread = threading.Thread(
                target=self._serve_http, args=(started, failure), name="otel-llm-collector-http", daemon=True
            )
            self._thread.start()
            started.wait()
            if failure:
                self.stop()
                raise failure[0]
        log.info(
            "otel-llm collector: OTLP/HTTP %s, OTLP/gRPC %s",
            self.http_url or "off",
            self.grpc_endpoint or "off",
        )
        return self

    def _open_alerter(self) -> Any:
        policy = self.budgets.policy
        alerts = policy.alerts if policy is not None else None
        if alerts is None or not (alerts.webhook_url or alerts.slack_url or alerts.alertmanager_url):
            return None
        alerter = Alerter(
            alerts,
            state_dir=Path(self.config.state.dir) / "alerts",
            link_template=self.config.alerts.link_template,
            metrics=self.metrics_registry,
        )
        alerter.start()
        return alerter

    def _serve_http(self, started: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start_http())
        except BaseException as exc:
            failure.append(exc)
            started.set()
            loop.close()
            return
        started.set()
        try:
            loop.run_forever()
        finally:
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
            loop.close()

    async def _start_http(self) -> None:
        token = self.token

        @web.middleware
        async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
            if token is not None and not check_token(token, request.headers.get("Authorization")):
                return web.json_response(
                    {"error": "missing or wrong bearer token"},
                    status=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return await handler(request)

        app = web.Application(middlewares=[auth])
        app.add_routes(http_routes(self.config.receivers.otlp, self, self._executor, self._http_refused))
        app.add_routes(control_routes(self.config.control, self))
        # Bodies are inflated by the receiver itself, which stops at the size limit.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, auto_decompress=False)
        await self._runner.setup()
        host, port = self.config.receivers.otlp.http.host_port()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.http_url = f"http://{bound[0]}:{bound[1]}"

    def _http_refused(self, signal: str, status: int) -> None:
        """An HTTP request refused before its items could be counted (one per request)."""
        self.metrics_registry.requests.labels(protocol="http", signal=signal, status=str(status)).inc()
        reason = _REFUSAL_REASONS.get(status)
        if reason is not None and signal == "traces":
            self.metrics_registry.spans_refused.labels(reason=reason).inc()

    def _grpc_refused(self, signal: str, status: int) -> None:
        code = _GRPC_CODES[status]
        self.metrics_registry.requests.labels(protocol="grpc", signal=signal, status=code).inc()
        if signal == "traces":
            self.metrics_registry.spans_refused.labels(reason=_REFUSAL_REASONS[status]).inc()

    def _inserted(self, rows: int, seconds: float) -> None:
        self.metrics_registry.insert_latency.observe(seconds)

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=2).wait()
            self._grpc = None
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._thread = None
        self._executor.shutdown(wait=True)
        if self.forwarder is not None:
            self.forwarder.close()
        if self.alerter is not None:
            self.alerter.close()
        if self.storage is not None:
            self.storage.close()
            self.storage = None
        self.state.close(self.processor)

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- ingest ---------------------------------------------------------------------

    def export(self, signal: Signal, message: Message, raw: bytes | None, protocol: str) -> ExportResult:
        """One export request (HTTP worker thread or gRPC thread)."""
        started = time.perf_counter()
        ok, busy = ("200", "503") if protocol == "http" else ("OK", "UNAVAILABLE")
        requests = self.metrics_registry.requests
        try:
            result = self._export(signal, message, raw, protocol)
        except Overloaded:
            requests.labels(protocol=protocol, signal=signal, status=busy).inc()
            raise
        requests.labels(protocol=protocol, signal=signal, status=ok).inc()
        self.metrics_registry.ingest_latency.observe(time.perf_counter() - started)
        return result

    def begin(self) -> None:
        """A request in flight (the receiver calls it before reading the body)."""
        if not self._inflight.acquire(blocking=False):
            raise Overloaded(
                f"too many export requests in flight (receivers.otlp.max_concurrent_requests="
                f"{self.config.receivers.otlp.max_concurrent_requests}); retry later"
            )

    def end(self) -> None:
        self._inflight.release()

    def _export(self, signal: Signal, message: Message, raw: bytes | None, protocol: str) -> ExportResult:
        if signal != "traces":
            if self.forwarder is not None:
                self.forwarder.send(signal, raw if raw is not None else message.SerializeToString())
            self.metrics_registry.spans_received.labels(signal=signal, protocol=protocol).inc(
                _item_count(message)
            )
            return ExportResult()
        return self._export_traces(message, raw, protocol)

    def _export_traces(self, message: Message, raw: bytes | None, protocol: str) -> ExportResult:
        records = from_export_request(message)
        metrics = self.metrics_registry
        storage = self.storage
        # Room is held before the spans are accounted: once they are, they must be
        # stored (a 503 then would lose the budget events, and the retry count twice).
        if storage is not None and not storage.spans.reserve(len(records)):
            metrics.spans_refused.labels(reason="overloaded").inc(len(records))
            raise Overloaded("the storage queue is full (storage.writer.max_queue_rows); retry later")
        try:
            outcome = self.processor.process(records)
        except BaseException:
            if storage is not None:
                storage.spans.submit((), reserved=len(records))
            raise
        refused: StorageError | None = None
        if storage is not None:
            try:
                storage.spans.submit(outcome.accepted, reserved=len(records))
            except StorageError as exc:  # only when the writer is closing: the collector stops
                refused = exc
        self._after(outcome.events)
        if refused is not None:
            raise Overloaded(str(refused)) from None
        metrics.spans_received.labels(signal="traces", protocol=protocol).inc(len(outcome.accepted))
        if outcome.rejected:
            metrics.spans_refused.labels(reason="killed_task").inc(outcome.rejected)
        if self.forwarder is not None:
            self.forwarder.send("traces", raw if raw is not None else message.SerializeToString())
        return ExportResult(outcome.rejected, outcome.message)

    def _after(self, events: list[BudgetEventRecord]) -> None:
        if not events:
            return
        if self.storage is not None:
            try:
                self.storage.events.submit(events)
            except StorageError as exc:
                log.error("cannot queue %d budget events: %s", len(events), exc)
        if self.alerter is not None:
            for event in events:
                try:
                    self.alerter.send(alert_of(event))
                except Exception:
                    log.exception("cannot hand a budget alert to the alerter")

    # -- control --------------------------------------------------------------------

    def task(self, task_id: str) -> dict[str, Any] | None:
        return self.processor.task(task_id)

    def tasks(self, state: str | None, limit: int) -> list[dict[str, Any]]:
        return self.processor.tasks(state, limit)

    def kill(self, task_id: str, reason: str) -> Decision:
        decision, events = self.processor.kill(task_id, reason)
        self._after(events)
        return decision

    def metrics(self, accept: str | None = None) -> tuple[bytes, str]:
        """``/metrics``: counters the processor keeps are brought up to date here, at
        scrape time, so the span path pays nothing for them."""
        m = self.metrics_registry
        stats = self.processor.stats
        for key, counter in (
            ("priced_spans", m.spans_priced),
            ("unpriced_spans", m.spans_unpriced),
            ("tasks_evicted", m.tasks_evicted),
            ("warnings", m.budget_warnings),
            ("kills_limit", m.kills.labels(cause="limit")),
            ("kills_window", m.kills.labels(cause="window")),
            ("kills_manual", m.kills.labels(cause="manual")),
        ):
            value = stats[key]
            delta = value - self._synced.get(key, 0)
            if delta > 0:
                counter.inc(delta)
                self._synced[key] = value
        m.tasks_active.set(self.processor.counts()["active_tasks"])
        if self.storage is not None:
            writer = self.storage.spans.stats()
            m.queue_depth.labels(queue="storage").set(writer["queue_rows"])
            m.spool_bytes.set(writer["spool_bytes"])
        if self.forwarder is not None:
            m.queue_depth.labels(queue="forward").set(self.forwarder.queued())
        return m.render(accept)


_REFUSAL_REASONS = {400: "malformed", 413: "oversize", 401: "unauthorized", 503: "overloaded"}
_GRPC_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 503: "UNAVAILABLE"}


def _item_count(message: Message) -> int:
    """Metric data points or log records in an export request."""
    if hasattr(message, "resource_logs"):
        return sum(len(sl.log_records) for rl in message.resource_logs for sl in rl.scope_logs)
    points = 0
    for rm in message.resource_metrics:  # type: ignore[attr-defined]
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind is not None:
                    points += len(getattr(metric, kind).data_points)
    return points


def alert_of(event: BudgetEventRecord) -> BudgetAlert:
    """The alerts helper's ``BudgetAlert`` for a budget event."""
    a = event.attributes
    window_start = a.get("window_start")
    return BudgetAlert(
        kind=a.get(ALERT_KIND, event.kind),
        policy=event.policy,
        limit=event.limit_name if event.limit_name != "manual" else "max_usd",
        spent=event.spent,
        value=event.limit_value,
        threshold=float(a.get("threshold", "1.0")),
        task_id=event.task_id or None,
        task_name=event.task_name or None,
        service=event.service_name or None,
        group=a.get("group") or None,
        window=a.get("window") or None,
        window_start=float(window_start) if window_start else None,
        at=event.timestamp_ns / 1e9,
    )


def run(config: Config) -> int:
    """Serve until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signals.SIGINT, signals.SIGTERM):
        signals.signal(sig, lambda *_: stop.set())
    collector = Collector(config).start()
    http, grpc = collector.http_url or "off", collector.grpc_endpoint or "off"
    print(f"otel-llm collector: OTLP/HTTP {http}, OTLP/gRPC {grpc}")
    print(f"  control API {collector.http_url}/v1/tasks, metrics {collector.http_url}/metrics", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        collector.stop()
    return 0
