"""Reading a field of what an SDK hands us: a plain dict (raw JSON, the usual request
argument), any other mapping, or an SDK model (pydantic). Runs many times on every call,
so it is kept to a type check and one lookup in the usual cases."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["field"]


def field(obj: Any, name: str) -> Any:
    """``obj[name]`` or ``obj.name``; ``None`` when absent (or when ``obj`` is None)."""
    if type(obj) is dict:  # the exact check first: the Mapping ABC check is slow
        return obj.get(name)
    value = getattr(obj, name, None)
    if value is None and isinstance(obj, Mapping):
        return obj.get(name)
    return value
