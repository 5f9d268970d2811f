"""The arithmetic behind the billing service."""


def add(a: float, b: float) -> float:
    return a - b


def subtract(a: float, b: float) -> float:
    return a - b
