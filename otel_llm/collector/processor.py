"""The budget processor: per-task and per-window spend from inference spans, kills.

Each export request's spans go through :meth:`BudgetProcessor.process` (thread-safe: the
HTTP and gRPC receivers call it from their worker threads), which returns the spans to
store, the number refused for good, and the budget events to write and alert on.

Tasks. A span belongs to the task named by its ``otel_llm.task.id`` attribute, else the
baggage-propagated ``otel_llm.task.id`` (``baggage.otel_llm.task.id``), else its trace
(the trace id, 32 lower-case hex digits): the same rule as the agent side and the
``llm_calls`` table. Task state starts with the first inference, tool or task span of a
task; other spans only touch a task that exists.

Spend. An inference span (one with input tokens under any known name) adds one
iteration, its tokens and its cost. A span without ``otel_llm.cost.usd`` is priced here
with the agent side's :mod:`otel_llm.usage` / :mod:`otel_llm.pricing` rules, and the
cost attributes are added to the span before it is stored. A model call counts once
even when two instrumentations each emit a span for it: within a task, a second span
carrying a ``gen_ai.response.id`` already seen is stored but not counted. A span without
a response id cannot be matched to another and always counts (every instrumentation we
know records the id when the provider returns one; calls that failed before a response
have none, and no usage either). ``execute_tool`` spans count tool calls;
``max_seconds`` is measured from the task's first span start to its latest span end.

Limits. Policies come from the policy file (:mod:`otel_llm.policy`): per-task limits of
every matching policy (strictest wins) are checked after each span; crossing
``warn_at`` of a limit writes one ``warn`` event; reaching a limit is a kill decision
(``on_exceed: kill``) or one ``exceeded`` event (``alert``). Window budgets
(``group_by``/``window``/``max_usd``) add the cost of every task of a group within a
window aligned to the epoch (a ``1d`` window is a UTC day) by the span's end time; when
spent, with ``on_exceed: kill`` every live task of the group is killed, and so is every
new task of the group until the next window starts.

Decisions. Kills go to the :class:`~otel_llm.collector.decisions.KillLog` (served to
agents) and to a decision cache of ``decision_cache_size`` task ids, much larger than
the active-task table, so late spans of a killed task are recognised. Those spans are
stored tagged ``otel_llm.collector.killed=true``; past ``killed_task_max_spans`` of them
they are refused (OTLP ``partial_success``). Their spend is still added.

Memory. At most ``max_active_tasks`` tasks are live (least recently seen evicted
beyond, counted); a task is finished when its root span ends (the trace's root for a
trace task, the outermost ``invoke_agent`` task span otherwise) or after
``idle_timeout``. Finished and evicted tasks keep their spend in a retired table of
``retired_tasks`` entries, so a late span adds to what was spent instead of starting
over.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from otel_llm import attributes as attrs
from otel_llm import failures
from otel_llm.collector import calls
from otel_llm.collector.config import BudgetProcessorConfig
from otel_llm.collector.decisions import Decision, KillLog
from otel_llm.policy import TASK_NAME_KEYS, BudgetConfig, Limits, Policy, Resolved
from otel_llm.storage.records import BudgetEventRecord, SpanRecord
from otel_llm.tasks.budget import describe

__all__ = ["KILLED_ATTRIBUTE", "BudgetProcessor", "Outcome", "TaskState", "WindowState"]

log = logging.getLogger(__name__)

KILLED_ATTRIBUTE = "otel_llm.collector.killed"
BAGGAGE_TASK_ID = "baggage." + attrs.BAGGAGE_TASK_ID
_TASK_SPAN_PREFIX = "invoke_agent "
_RESPONSE_ID = gen_ai.GEN_AI_RESPONSE_ID
_NO_LIMITS = Resolved(Limits(), 0.8, "kill")

# Alert kinds (the alerts helper's vocabulary), carried in budget event attributes.
ALERT_KIND = "alert_kind"


@dataclass(slots=True)
class Outcome:
    """What one export request's spans came to."""

    accepted: list[SpanRecord]
    rejected: int = 0
    message: str = ""
    events: list[BudgetEventRecord] = field(default_factory=list)


class TaskState:
    """One task's spend and budget state."""

    __slots__ = (
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd",
        "finished",
        "first_ns",
        "groups",
        "input_tokens",
        "iterations",
        "killed",
        "killed_spans",
        "last_ns",
        "name",
        "notified",
        "output_tokens",
        "resolved",
        "response_ids",
        "seen",
        "service",
        "state",
        "task_id",
        "tool_calls",
        "unpriced",
    )

    def __init__(self, task_id: str, name: str, service: str, resolved: Resolved, groups: tuple) -> None:
        self.task_id = task_id
        self.name = name
        self.service = service
        self.resolved = resolved
        self.groups: tuple[tuple[str, str], ...] = groups
        self.cost_usd = 0.0
        self.input_tokens = self.output_tokens = self.cache_read_tokens = self.cache_write_tokens = 0
        self.iterations = self.tool_calls = self.unpriced = self.killed_spans = 0
        self.first_ns = self.last_ns = 0
        self.seen = 0.0
        self.state = "ok"
        self.killed: Decision | None = None
        self.notified: set[str] | None = None
        self.response_ids: str | set[str] | None = None
        self.finished = False

    def spent(self, limit: str) -> float:
        if limit == "max_usd":
            return self.cost_usd
        if limit == "max_tokens":
            return self.input_tokens + self.output_tokens
        if limit == "max_iterations":
            return self.iterations
        if limit == "max_tool_calls":
            return self.tool_calls
        if limit == "max_seconds":
            return max(self.last_ns - self.first_ns, 0) / 1e9
        return 0.0

    def to_json(self) -> dict[str, Any]:
        """The task as ``GET /v1/tasks/{id}`` shows it."""
        limits = dict(self.resolved.limits.items())
        return {
            "task_id": self.task_id,
            "task_name": self.name,
            "service": self.service,
            "state": self.state,
            "finished": self.finished,
            "cost_usd": self.cost_usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_input_tokens": self.cache_read_tokens,
            "cache_creation_input_tokens": self.cache_write_tokens,
            "iterations": self.iterations,
            "tool_calls": self.tool_calls,
            "unpriced_calls": self.unpriced,
            "seconds": self.spent("max_seconds"),
            "first_seen_ns": self.first_ns,
            "last_seen_ns": self.last_ns,
            "limits": limits,
            "spent": {name: self.spent(name) for name in limits},
            "warn_at": self.resolved.warn_at,
            "on_exceed": self.resolved.on_exceed,
            "policies": list(self.resolved.policies),
            "groups": [f"{policy}:{group}" for policy, group in self.groups],
            "killed": self.killed.to_json() if self.killed else None,
        }

    def dump(self) -> list[Any]:
        """Everything restart recovery needs, compact (journal and snapshots)."""
        r = self.resolved
        return [
            self.task_id,
            self.name,
            self.service,
            dict(r.limits.items()),
            r.warn_at,
            r.on_exceed,
            list(r.policies),
            [list(g) for g in self.groups],
            self.cost_usd,
            self.input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.iterations,
            self.tool_calls,
            self.unpriced,
            self.first_ns,
            self.last_ns,
            self.state,
            sorted(self.notified or ()),
            self.killed_spans,
            self.finished,
            [self.response_ids] if type(self.response_ids) is str else sorted(self.response_ids or ()),
        ]

    @classmethod
    def load(cls, row: list[Any]) -> TaskState:
        resolved = Resolved(Limits(**row[3]), row[4], row[5], tuple(row[6]))
        task = cls(row[0], row[1], row[2], resolved, tuple(tuple(g) for g in row[7]))
        (
            task.cost_usd,
            task.input_tokens,
            task.output_tokens,
            task.cache_read_tokens,
            task.cache_write_tokens,
            task.iterations,
            task.tool_calls,
            task.unpriced,
            task.first_ns,
            task.last_ns,
            task.state,
        ) = row[8:19]
        task.notified = set(row[19]) or None
        task.killed_spans = row[20]
        task.finished = row[21]
        ids = row[22]
        task.response_ids = None if not ids else ids[0] if len(ids) == 1 else set(ids)
        return task


@dataclass(slots=True)
class WindowState:
    """A window budget's spend for one group in one window."""

    policy: str
    group: str
    start: float
    """Unix seconds the window started."""
    spent_usd: float = 0.0
    warned: bool = False
    exceeded: bool = False

    def dump(self) -> list[Any]:
        return [self.policy, self.group, self.start, self.spent_usd, self.warned, self.exceeded]

    @classmethod
    def load(cls, row: list[Any]) -> WindowState:
        return cls(*row)


class BudgetProcessor:
    """See the module docstring."""

    def __init__(
        self,
        config: BudgetProcessorConfig,
        budgets: BudgetConfig,
        kill_log: KillLog,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.budgets = budgets
        self.kill_log = kill_log
        self._clock = clock
        self.lock = threading.Lock()
        self._active: OrderedDict[str, TaskState] = OrderedDict()
        self._retired: OrderedDict[str, TaskState] = OrderedDict()
        self._decisions: OrderedDict[str, Decision] = OrderedDict()
        self._windows: dict[tuple[str, str], WindowState] = {}
        self._window_policies: tuple[Policy, ...] = tuple(
            p for p in (budgets.policy.policies if budgets.policy else ()) if p.window_seconds
        )
        self._policies_by_name = {p.name: p for p in (budgets.policy.policies if budgets.policy else ())}
        self._resolved_cache: dict[Resolved, Resolved] = {}
        # What changed since the journal last took it (restart recovery).
        self._dirty_tasks: set[str] = set()
        self._dirty_windows: set[tuple[str, str]] = set()
        self._new_decisions: list[Decision] = []
        self.journal: Callable[[list[Any], list[Any], list[Decision]], None] | None = None
        self.stats = dict.fromkeys(
            (
                "spans",
                "inference_spans",
                "priced_spans",
                "unpriced_spans",
                "duplicate_spans",
                "refused_spans",
                "tasks_started",
                "tasks_finished",
                "tasks_evicted",
                "tasks_forgotten",
                "kills",
                "kills_limit",
                "kills_window",
                "kills_manual",
                "warnings",
            ),
            0,
        )

    # -- ingest ---------------------------------------------------------------------

    def process(self, records: list[SpanRecord]) -> Outcome:
        """Account a batch of spans; see the module docstring. Never raises on span content."""
        outcome = Outcome(accepted=[])
        with self.lock:
            now = self._clock()
            monotonic = time.monotonic()
            for record in records:
                try:
                    keep = self._span(record, outcome, now, monotonic)
                except Exception:
                    # A bug met on one span must not lose the rest of the batch, nor the
                    # span: it is stored, its spend is not counted.
                    failures.warn_once(
                        log,
                        "span",
                        "otel-llm collector: cannot account a span (trace %s, span %s); it is stored "
                        "but not counted toward any budget (logged once)",
                        record.trace_id,
                        record.span_id,
                        exc_info=True,
                    )
                    keep = True
                if keep:
                    outcome.accepted.append(record)
                else:
                    outcome.rejected += 1
            self.stats["spans"] += len(records)
            self.stats["refused_spans"] += outcome.rejected
            if outcome.rejected:
                outcome.message = (
                    f"{outcome.rejected} span(s) refused: their task was killed by the otel-llm collector "
                    f"and sent more than {self.config.killed_task_max_spans} spans since"
                )
            self._overflow()
            self._flush_journal()
        return outcome

    def _span(self, record: SpanRecord, outcome: Outcome, now: float, monotonic: float) -> bool:
        a = record.span_attributes
        task_id = a.get(attrs.TASK_ID) or a.get(BAGGAGE_TASK_ID) or record.trace_id
        inference = calls.is_inference(a)
        name = record.span_name
        tool = not inference and calls.is_tool(name, a)
        task_span = name.startswith(_TASK_SPAN_PREFIX) and attrs.TASK_ID in a
        task = self._active.get(task_id)
        if task is None:
            if inference or tool or task_span:
                task = self._start(task_id, record, outcome, now)
            else:
                decision = self._decisions.get(task_id)
                if decision is None:
                    return True
                task = self._start(task_id, record, outcome, now)
        else:
            self._active.move_to_end(task_id)
        task.seen = monotonic
        end_ns = record.timestamp_ns + record.duration_ns
        if not task.first_ns or (record.timestamp_ns and record.timestamp_ns < task.first_ns):
            task.first_ns = record.timestamp_ns
        if end_ns > task.last_ns:
            task.last_ns = end_ns
        keep = True
        if task.killed is not None:
            task.killed_spans += 1
            a[KILLED_ATTRIBUTE] = "true"
            keep = task.killed_spans <= self.config.killed_task_max_spans
        if inference:
            self._inference(task, record, outcome, end_ns)
        elif tool:
            task.tool_calls += 1
        elif task_span and not task.name:
            task.name = a.get(attrs.TASK_NAME) or name[len(_TASK_SPAN_PREFIX) :]
        self._dirty_tasks.add(task_id)
        if task.killed is None:
            self._check(task, record, outcome, now)
        root = not record.parent_span_id or (task_span and not a.get(attrs.TASK_PARENT_ID))
        if root and (task_span or task_id == record.trace_id):
            self._finish(task)
        return keep

    def _inference(self, task: TaskState, record: SpanRecord, outcome: Outcome, end_ns: int) -> None:
        a = record.span_attributes
        self.stats["inference_spans"] += 1
        response_id = a.get(_RESPONSE_ID)
        if response_id:
            # One id is kept as a plain string (most tasks in the table have few calls
            # seen yet; a set costs 216 bytes), a set from the second on.
            seen = task.response_ids
            if seen is None:
                task.response_ids = response_id
            elif seen == response_id or (type(seen) is set and response_id in seen):
                self.stats["duplicate_spans"] += 1
                return
            elif type(seen) is str:
                task.response_ids = {seen, response_id}
            else:
                seen.add(response_id)
        usage = calls.usage_of(a)
        cost = calls.recorded_cost(a)
        if cost is None and self.config.price_unpriced_spans:
            priced = calls.price_span(a, usage, record.timestamp_ns)
            if priced is not None:
                cost = priced.total_usd
                self.stats["priced_spans"] += 1
        if cost is None:
            task.unpriced += 1
            self.stats["unpriced_spans"] += 1
            cost = 0.0
        task.iterations += 1
        task.cost_usd += cost
        task.input_tokens += usage.input_tokens
        task.output_tokens += usage.output_tokens
        task.cache_read_tokens += usage.cache_read_input_tokens
        task.cache_write_tokens += usage.cache_creation_input_tokens
        if cost and task.groups:
            self._add_to_windows(task, record, cost, end_ns, outcome)

    # -- tasks ----------------------------------------------------------------------

    def _start(self, task_id: str, record: SpanRecord, outcome: Outcome, now: float) -> TaskState:
        task = self._retired.pop(task_id, None)
        if task is not None:
            task.finished = False
            self._active[task_id] = task
            if task.killed is None:
                self._check_windows(task, record, outcome, now)
            return task
        a = record.span_attributes
        name = a.get(attrs.TASK_NAME) or a.get("gen_ai.agent.name") or ""
        if not name and record.span_name.startswith(_TASK_SPAN_PREFIX):
            name = record.span_name[len(_TASK_SPAN_PREFIX) :]
        view = {key: name for key in TASK_NAME_KEYS} if name else {}
        view.update(record.resource_attributes)
        view.update(a)
        resolved = self._resolve(name, view)
        groups = tuple(self._groups(view))
        task = TaskState(task_id, name, record.service_name, resolved, groups)
        self._active[task_id] = task
        self.stats["tasks_started"] += 1
        decision = self._decisions.get(task_id)
        if decision is not None:
            task.killed = decision
            task.state = "killed"
        else:
            self._check_windows(task, record, outcome, now)
        return task

    def _check_windows(self, task: TaskState, record: SpanRecord, outcome: Outcome, now: float) -> None:
        """Kill a task (new, or back from the retired table) of a group whose window
        budget is spent, at its first span."""
        for key in task.groups:
            window = self._windows.get(key)
            policy = self._policies_by_name[key[0]]
            if (
                window is not None
                and window.exceeded
                and policy.on_exceed == "kill"
                and window.start == self._window_start(policy, record.timestamp_ns / 1e9 or now)
            ):
                self._kill_for_window(task, policy, window, outcome, now, record)
                return

    def _resolve(self, name: str, view: dict[str, str]) -> Resolved:
        if self.budgets.empty:
            return _NO_LIMITS
        resolved = self.budgets.resolve(name, view)
        # Tasks of one agent share their limits: keep one object of each.
        return self._resolved_cache.setdefault(resolved, resolved)

    def _groups(self, view: dict[str, str]) -> Iterable[tuple[str, str]]:
        for policy in self._window_policies:
            if not policy.matches(view):
                continue
            if policy.group_by:
                value = view.get(policy.group_by)
                if not value:
                    continue
                yield policy.name, f"{policy.group_by}={value}"
            else:
                yield policy.name, ""

    def _finish(self, task: TaskState) -> None:
        if self._active.pop(task.task_id, None) is None:
            return
        task.finished = True
        self._retire(task)
        self.stats["tasks_finished"] += 1

    def _retire(self, task: TaskState) -> None:
        self._retired[task.task_id] = task
        self._retired.move_to_end(task.task_id)
        while len(self._retired) > self.config.retired_tasks:
            self._retired.popitem(last=False)
            self.stats["tasks_forgotten"] += 1

    def _overflow(self) -> None:
        while len(self._active) > self.config.max_active_tasks:
            _, task = self._active.popitem(last=False)
            self.stats["tasks_evicted"] += 1
            self._retire(task)

    def sweep(self) -> int:
        """Finish tasks idle for ``idle_timeout``; returns how many."""
        cutoff = time.monotonic() - self.config.idle_timeout
        done = 0
        with self.lock:
            while self._active:
                task = next(iter(self._active.values()))
                if task.seen > cutoff:
                    break
                self._finish(task)
                self._dirty_tasks.add(task.task_id)
                done += 1
            self._flush_journal()
        return done

    # -- limits ---------------------------------------------------------------------

    def _check(self, task: TaskState, record: SpanRecord, outcome: Outcome, now: float) -> None:
        resolved = task.resolved
        for limit, value in resolved.limits.items():
            spent = task.spent(limit)
            if spent >= value:
                if resolved.on_exceed == "kill":
                    policy = ",".join(resolved.policies)
                    reason = f"the otel-llm collector stopped the task: {describe(limit, spent, value)}"
                    self._kill(task, limit, spent, value, policy, reason, outcome, now, record)
                    return
                key = f"exceeded:{limit}"
                if task.notified is None or key not in task.notified:
                    task.notified = (task.notified or set()) | {key}
                    task.state = "exceeded"
                    self._event(outcome, "exceeded", task, limit, value, spent, now, record, 1.0, "alert")
            elif spent >= resolved.warn_at * value:
                key = f"warn:{limit}"
                if task.notified is None or key not in task.notified:
                    task.notified = (task.notified or set()) | {key}
                    if task.state == "ok":
                        task.state = "warn"
                    self.stats["warnings"] += 1
                    self._event(
                        outcome, "warn", task, limit, value, spent, now, record, resolved.warn_at, "warn"
                    )

    def _kill(
        self,
        task: TaskState,
        limit: str,
        spent: float,
        value: float,
        policy: str,
        reason: str,
        outcome: Outcome | None,
        now: float,
        record: SpanRecord | None = None,
        group: str = "",
        alert_kind: str = "kill",
        extra: dict[str, str] | None = None,
    ) -> Decision:
        decision = Decision(
            cursor=self.kill_log.next_cursor(),
            task_id=task.task_id,
            task_name=task.name,
            service=task.service,
            limit=limit,
            spent=spent,
            limit_value=value,
            policy=policy,
            reason=reason,
            at=now,
            group=group,
        )
        task.killed = decision
        task.state = "killed"
        self._decisions[task.task_id] = decision
        while len(self._decisions) > self.config.decision_cache_size:
            self._decisions.popitem(last=False)
        self._new_decisions.append(decision)
        self._dirty_tasks.add(task.task_id)
        self.kill_log.add(decision)
        self.stats["kills"] += 1
        cause = "manual" if limit == "manual" else "window" if group or alert_kind == "window" else "limit"
        self.stats[f"kills_{cause}"] += 1
        if outcome is not None:
            self._event(
                outcome,
                "killed",
                task,
                limit,
                value,
                spent,
                now,
                record,
                1.0,
                alert_kind,
                message=reason,
                policy=policy,
                extra=extra,
            )
        return decision

    # -- windows --------------------------------------------------------------------

    @staticmethod
    def _window_start(policy: Policy, at: float) -> float:
        size = policy.window_seconds or 1.0
        return math.floor(at / size) * size

    def _add_to_windows(
        self, task: TaskState, record: SpanRecord, cost: float, end_ns: int, outcome: Outcome
    ) -> None:
        now = self._clock()
        at = end_ns / 1e9 if end_ns else now
        for key in task.groups:
            policy = self._policies_by_name[key[0]]
            start = self._window_start(policy, at)
            window = self._windows.get(key)
            if window is None or start > window.start:
                window = self._windows[key] = WindowState(key[0], key[1], start)
            elif start < window.start:
                continue  # a late span of a window already over
            window.spent_usd += cost
            self._dirty_windows.add(key)
            limit = policy.max_usd or 0.0
            warn_at = policy.warn_at or (self.budgets.policy.warn_at if self.budgets.policy else 0.8)
            if window.spent_usd >= limit and not window.exceeded:
                window.exceeded = True
                self._window_exceeded(policy, window, outcome, now, record)
            elif window.exceeded and policy.on_exceed == "kill" and task.killed is None:
                # A task that was not live when the window was spent (it started in the
                # window before, or came back after that) spends more of it.
                self._kill_for_window(task, policy, window, outcome, now, record)
            elif window.spent_usd >= warn_at * limit and not window.warned and not window.exceeded:
                window.warned = True
                self.stats["warnings"] += 1
                self._window_event(outcome, "warn", policy, window, now, warn_at, "window_warn")

    def _window_exceeded(
        self, policy: Policy, window: WindowState, outcome: Outcome, now: float, record: SpanRecord
    ) -> None:
        key = (policy.name, window.group)
        if policy.on_exceed != "kill":
            self._window_event(outcome, "exceeded", policy, window, now, 1.0, "window_exceeded")
            return
        self._window_event(outcome, "exceeded", policy, window, now, 1.0, "window_exceeded")
        for task in list(self._active.values()):
            if key in task.groups and task.killed is None:
                self._kill_for_window(task, policy, window, outcome, now, record)

    def _kill_for_window(
        self,
        task: TaskState,
        policy: Policy,
        window: WindowState,
        outcome: Outcome,
        now: float,
        record: SpanRecord | None,
    ) -> None:
        spent, value = window.spent_usd, policy.max_usd or 0.0
        who = f"{window.group} " if window.group else ""
        reason = (
            f"the otel-llm collector stopped the task: the {policy.window} window budget of {who}"
            f"(policy {policy.name}) is spent: {describe('max_usd', spent, value)}"
        )
        self._kill(
            task,
            "max_usd",
            spent,
            value,
            policy.name,
            reason,
            outcome,
            now,
            record,
            group=window.group,
            alert_kind="kill",
            extra={"group": window.group, "window": policy.window or "", "window_start": str(window.start)},
        )

    def _window_event(
        self,
        outcome: Outcome,
        kind: str,
        policy: Policy,
        window: WindowState,
        now: float,
        threshold: float,
        alert_kind: str,
    ) -> None:
        value = policy.max_usd or 0.0
        outcome.events.append(
            BudgetEventRecord(
                timestamp_ns=int(now * 1e9),
                event_id=uuid.uuid4().hex,
                kind=kind,
                task_id="",
                policy=policy.name,
                limit_name="max_usd",
                limit_value=value,
                spent=window.spent_usd,
                message=f"window budget {policy.name} ({window.group or 'all'}, {policy.window}): "
                f"{describe('max_usd', window.spent_usd, value)}",
                attributes={
                    ALERT_KIND: alert_kind,
                    "threshold": str(threshold),
                    "group": window.group,
                    "window": policy.window or "",
                    "window_start": str(window.start),
                },
            )
        )

    def _event(
        self,
        outcome: Outcome,
        kind: str,
        task: TaskState,
        limit: str,
        value: float,
        spent: float,
        now: float,
        record: SpanRecord | None,
        threshold: float,
        alert_kind: str,
        *,
        message: str = "",
        policy: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        attributes = {ALERT_KIND: alert_kind, "threshold": str(threshold), **(extra or {})}
        outcome.events.append(
            BudgetEventRecord(
                timestamp_ns=int(now * 1e9),
                event_id=uuid.uuid4().hex,
                kind=kind,
                task_id=task.task_id,
                task_name=task.name,
                service_name=task.service,
                policy=",".join(task.resolved.policies) if policy is None else policy,
                limit_name=limit,
                limit_value=float(value),
                spent=float(spent),
                message=message or f"task {task.task_id}: {describe(limit, spent, value)}",
                trace_id=record.trace_id if record else "",
                span_id=record.span_id if record else "",
                attributes=attributes,
            )
        )

    # -- control --------------------------------------------------------------------

    def kill(self, task_id: str, reason: str = "") -> tuple[Decision, list[BudgetEventRecord]]:
        """A person stops a task (``POST /v1/tasks/{id}/kill``); known or not yet seen."""
        outcome = Outcome(accepted=[])
        with self.lock:
            now = self._clock()
            existing = self._decisions.get(task_id)
            if existing is not None:
                return existing, []
            task = self._active.get(task_id) or self._retired.get(task_id)
            if task is None:
                task = TaskState(task_id, "", "", _NO_LIMITS, ())
                self._retire(task)
            text = f"the otel-llm collector stopped the task: killed by hand ({reason or 'no reason given'})"
            decision = self._kill(task, "manual", 0.0, 0.0, "", text, outcome, now, alert_kind="manual_kill")
            self._flush_journal()
        return decision, outcome.events

    def task(self, task_id: str) -> dict[str, Any] | None:
        with self.lock:
            task = self._active.get(task_id) or self._retired.get(task_id)
            if task is not None:
                return task.to_json()
            decision = self._decisions.get(task_id)
            if decision is not None:
                return {"task_id": task_id, "state": "killed", "killed": decision.to_json()}
        return None

    def tasks(self, state: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Live tasks (``state`` = ``ok``, ``warn``, ``exceeded``, ``killed``), newest
        first; ``finished`` lists retired ones, ``all`` both."""
        with self.lock:
            if state == "finished":
                pool = list(self._retired.values())
            elif state == "all":
                pool = [*self._active.values(), *self._retired.values()]
            else:
                pool = list(self._active.values())
                if state:
                    pool = [t for t in pool if t.state == state]
            pool.reverse()
            return [t.to_json() for t in pool[:limit]]

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {
                "active_tasks": len(self._active),
                "retired_tasks": len(self._retired),
                "decisions": len(self._decisions),
                "windows": len(self._windows),
            }

    def windows(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {
                    **{
                        k: getattr(w, k)
                        for k in ("policy", "group", "start", "spent_usd", "warned", "exceeded")
                    }
                }
                for w in self._windows.values()
            ]

    # -- restart recovery -----------------------------------------------------------

    def _flush_journal(self) -> None:
        if self.journal is None or not (self._dirty_tasks or self._dirty_windows or self._new_decisions):
            self._dirty_tasks.clear()
            self._dirty_windows.clear()
            self._new_decisions.clear()
            return
        tasks = []
        for task_id in self._dirty_tasks:
            task = self._active.get(task_id) or self._retired.get(task_id)
            if task is not None:
                tasks.append(task.dump())
        windows = [self._windows[key].dump() for key in self._dirty_windows if key in self._windows]
        decisions = list(self._new_decisions)
        self._dirty_tasks.clear()
        self._dirty_windows.clear()
        self._new_decisions.clear()
        self.journal(tasks, windows, decisions)

    def dump(self) -> dict[str, Any]:
        """The whole state, for a snapshot (call with ``lock`` held)."""
        return {
            "active": [t.dump() for t in self._active.values()],
            "retired": [t.dump() for t in self._retired.values()],
            "windows": [w.dump() for w in self._windows.values()],
            "decisions": [d.to_json() for d in self._decisions.values()],
            "cursor": self.kill_log.cursor,
        }

    def apply(self, tasks: list[Any], windows: list[Any], decisions: list[Any]) -> None:
        """Replay a snapshot's or a journal record's content (last write wins)."""
        for row in tasks:
            task = TaskState.load(row)
            self._active.pop(task.task_id, None)
            self._retired.pop(task.task_id, None)
            if task.finished:
                self._retire(task)
            else:
                task.seen = time.monotonic()
                self._active[task.task_id] = task
        for row in windows:
            window = WindowState.load(row)
            self._windows[(window.policy, window.group)] = window
        for row in decisions:
            decision = row if isinstance(row, Decision) else Decision.from_json(row)
            self._decisions[decision.task_id] = decision
            self.kill_log.restore(decision.cursor, [decision])
        for task_id, decision in self._decisions.items():
            task = self._active.get(task_id) or self._retired.get(task_id)
            if task is not None and task.killed is None:
                task.killed = decision
                task.state = "killed"
        self._overflow()
