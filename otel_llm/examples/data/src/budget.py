"""Spending limits for the billing service."""

MAX_SPEND = 5.00  # dollars per invoice run
WARN_AT = 0.8


def over_budget(spent: float) -> bool:
    return spent >= MAX_SPEND
