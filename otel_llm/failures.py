"""Failures inside the telemetry path: logged once per kind, never raised.

The instrumentation and the task accounting run inside the user's model call; a bug or
a surprise there must not break the call, and must not flood the log either. Each kind
of failure (``what``) is logged at WARNING the first time, with its traceback.
"""

from __future__ import annotations

import logging
import threading

_seen: set[tuple[str, str]] = set()
_lock = threading.Lock()


def log_once(logger: logging.Logger, what: str, exc: BaseException | None = None) -> None:
    """Log ``what`` failed, once per (logger, what) in this process."""
    key = (logger.name, what)
    with _lock:
        if key in _seen:
            return
        _seen.add(key)
    logger.warning("otel-llm: %s failed; the model call goes on untouched", what, exc_info=exc)


def forget(logger: logging.Logger) -> None:
    """Log ``logger``'s failures again (tests only)."""
    with _lock:
        _seen.difference_update({key for key in _seen if key[0] == logger.name})
