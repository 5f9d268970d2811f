"""Budget alerts the alert tests send (one definition, shared by the alert test files)."""

from __future__ import annotations

from otel_llm.collector.alerts import BudgetAlert


def window_alert(window_start: float, at: float) -> BudgetAlert:
    """The daily window of tenant acme, exceeded: $100.25 spent of $100."""
    return BudgetAlert(
        "window_exceeded",
        "tenant-daily",
        "max_usd",
        100.25,
        100.0,
        1.0,
        group="tenant=acme",
        window="1d",
        window_start=window_start,
        at=at,
    )
