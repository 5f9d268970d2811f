"""All the process state of tasks, in one place: the settings (budget configuration,
tracer provider), the automatic tasks (per trace, per process, joined through baggage),
the live tasks by id, and whether threads are patched. Modules of this package read and
change it through their own named functions; :func:`reset` forgets it (tests only)."""

from __future__ import annotations

import collections
import threading
import weakref
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from otel_llm.policy import BudgetConfig

if TYPE_CHECKING:
    from otel_llm.tasks.task import Task

__all__ = ["AUTO_LRU", "STATE", "reset"]

AUTO_LRU = 4096
"""Automatic tasks kept per kind (traces, joined); the least recently used is forgotten."""


class _State:
    def __init__(self) -> None:
        # -- settings (otel_llm.tasks.settings)
        self.settings_lock = threading.RLock()
        self.config: BudgetConfig | None = None
        self.tracer_provider: trace.TracerProvider | None = None
        self.resource_cache: tuple[int, dict[str, Any]] | None = None
        # -- automatic and joined tasks (otel_llm.tasks.auto, otel_llm.tasks.task)
        self.auto_lock = threading.RLock()
        self.auto_enabled = 0
        self.process: Task | None = None
        self.process_context: otel_context.Context | None = None
        self.made: tuple[Task, otel_context.Context | None] | None = None
        """(process, process_context) once made, read without the lock by every call."""
        self.env_context: otel_context.Context | None = None
        self.traces: collections.OrderedDict[str, Task] = collections.OrderedDict()
        self.joined: collections.OrderedDict[str, Task] = collections.OrderedDict()
        self.atexit_registered = False
        # -- every task that has started and not ended, by id (kill_task)
        self.live: weakref.WeakValueDictionary[str, Task] = weakref.WeakValueDictionary()
        # -- otel_llm.tasks.propagation
        self.threads_lock = threading.Lock()
        self.threads_patched = False
        # -- otel_llm.tasks.collector: kills learned from collectors (task id -> reason),
        # the subscribers by URL, the prompt-export span processor
        self.collector_lock = threading.Lock()
        self.collector_kills: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.subscribers: dict[str, Any] = {}
        self.prompt_export: Any = None


STATE = _State()


def reset() -> None:
    """Forget the configuration, the automatic tasks and the live tasks (tests only).
    Patched threads stay patched (the patch is a no-op outside tasks)."""
    with STATE.auto_lock:
        STATE.auto_enabled = 0
        STATE.process = None
        STATE.process_context = None
        STATE.made = None
        STATE.env_context = None
        STATE.traces.clear()
        STATE.joined.clear()
    with STATE.settings_lock:
        STATE.config = None
        STATE.tracer_provider = None
        STATE.resource_cache = None
    STATE.live.clear()
    with STATE.collector_lock:
        STATE.collector_kills.clear()
        for subscriber in STATE.subscribers.values():
            subscriber.stop()
        STATE.subscribers.clear()
