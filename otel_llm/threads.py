"""Tasks across threads: threads started with ``threading.Thread`` and work submitted to a
``ThreadPoolExecutor`` inside a task belong to that task. The first task started in a
process (or :func:`otel_llm.tasks.enable_auto_tasks`) patches ``Thread.start`` and
``ThreadPoolExecutor.submit`` to carry the context when, and only when, a task is
active. Executor worker threads themselves never inherit a context, so pooled work never
leaks into another task. Other long-lived worker pools started inside a task inherit
that task. Process pools do not join; use :func:`otel_llm.tasks.subprocess_env` for
subprocesses. (asyncio tasks copy the context on their own.)
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opentelemetry import context as otel_context

from otel_llm.carrier import _carries_task

_threads_patched = False
_patch_lock = threading.Lock()


def _run_in_context(ctx: otel_context.Context, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    token = otel_context.attach(ctx)
    try:
        return fn(*args, **kwargs)
    finally:
        otel_context.detach(token)


def _install_thread_propagation() -> None:
    """Make threads and executor work started inside a task belong to it (see the module
    docstring). Idempotent; a no-op for threads started outside any task."""
    global _threads_patched
    if _threads_patched:
        return
    with _patch_lock:
        if _threads_patched:
            return
        from concurrent.futures import thread as futures_thread

        pool_worker = futures_thread._worker
        original_start = threading.Thread.start
        original_submit = ThreadPoolExecutor.submit

        @functools.wraps(original_start)
        def start(self: threading.Thread) -> None:
            ctx = otel_context.get_current()
            if _carries_task(ctx) and getattr(self, "_target", None) is not pool_worker:
                self.run = functools.partial(_run_in_context, ctx, self.run)  # type: ignore[method-assign]
            original_start(self)

        @functools.wraps(original_submit)
        def submit(self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            ctx = otel_context.get_current()
            if _carries_task(ctx):
                fn = functools.partial(_run_in_context, ctx, fn)
            return original_submit(self, fn, *args, **kwargs)

        threading.Thread.start = start  # type: ignore[method-assign]
        ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]
        _threads_patched = True
