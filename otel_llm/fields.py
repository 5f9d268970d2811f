"""Reading a field of what an SDK hands us: a plain dict (raw JSON, the usual request
argument), any other mapping, or an SDK model (pydantic). Runs many times on every call,
so it is kept to a type check and one lookup in the usual cases."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["field"]

# Pydantic v2 model class -> the names ``getattr`` finds on its instances without a miss
# (declared fields, and whatever the class itself has). ``None`` for other classes.
_known: dict[type, frozenset[str] | None] = {}


def _names(kind: type) -> frozenset[str] | None:
    fields = getattr(kind, "__pydantic_fields__", None) or getattr(kind, "model_fields", None)
    if not isinstance(fields, dict) or not hasattr(kind, "__pydantic_extra__"):
        names = None
    else:
        names = frozenset(fields) | frozenset(dir(kind))
    if len(_known) > 1024:
        _known.clear()
    _known[kind] = names
    return names


def field(obj: Any, name: str) -> Any:
    """``obj[name]`` or ``obj.name``; ``None`` when absent (or when ``obj`` is None)."""
    kind = type(obj)
    if kind is dict:  # the exact check first: the Mapping ABC check is slow
        return obj.get(name)
    names = _known[kind] if kind in _known else _names(kind)
    if names is not None and name not in names and name[:1] != "_":
        # A field this SDK version's model does not declare: pydantic's ``__getattr__``
        # would raise and catch an AttributeError to say so. Newer APIs' fields that an
        # older SDK does not know arrive as extras (the SDKs' models allow them).
        extra = obj.__pydantic_extra__
        return extra.get(name) if extra else None
    value = getattr(obj, name, None)
    if value is None and isinstance(obj, Mapping):
        return obj.get(name)
    return value
