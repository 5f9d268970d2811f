"""Logging once: failures inside the telemetry path, unpriced models, ignored baggage.

The instrumentation and the task accounting run inside the user's model call; a bug or
a surprise there must not break the call, and must not flood the log either. This is
the one place that remembers what was already logged: each (logger, key) is logged the
first time only, for the life of the process. At most ``MAX_KEYS`` keys are remembered;
past that nothing more is logged (a process calling ten thousand unknown models must not
grow without bound).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable

__all__ = ["MAX_KEYS", "first_time", "forget", "log_once", "warn_once"]

MAX_KEYS = 4096

_seen: set[tuple[str, Hashable]] = set()
_lock = threading.Lock()


def first_time(logger: logging.Logger, key: Hashable) -> bool:
    """True the first time ``key`` is seen for ``logger`` in this process."""
    seen = (logger.name, key)
    with _lock:
        if seen in _seen or len(_seen) >= MAX_KEYS:
            return False
        _seen.add(seen)
    return True


def warn_once(
    logger: logging.Logger, key: Hashable, message: str, *args: object, exc_info: bool = False
) -> None:
    """``logger.warning(message, *args)``, the first time ``key`` is seen for ``logger``."""
    if first_time(logger, key):
        logger.warning(message, *args, exc_info=exc_info)


def log_once(logger: logging.Logger, what: str, exc: BaseException | None = None) -> None:
    """Log that ``what`` failed (with ``exc``'s traceback), once per (logger, what)."""
    if first_time(logger, ("failed", what)):
        logger.warning("otel-llm: %s failed; the model call goes on untouched", what, exc_info=exc)


def forget(logger: logging.Logger) -> None:
    """Log ``logger``'s keys again (tests only)."""
    with _lock:
        _seen.difference_update({key for key in _seen if key[0] == logger.name})
