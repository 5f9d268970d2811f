"""Numbers read from text others wrote (span attributes, baggage): one rule for which
count or amount is believable, so no side lets NaN, infinity or a negative through."""

from __future__ import annotations

__all__ = ["finite_nonneg"]

_INF = float("inf")


def finite_nonneg(raw: str | float) -> float | None:
    """``raw`` as a finite number >= 0, else None (not a number, NaN, infinite, negative)."""
    try:
        value = float(raw)
    except (ValueError, OverflowError, TypeError):
        return None
    # NaN fails both comparisons.
    return value if 0 <= value < _INF else None
