"""Reading the package's ``.sql`` files: one file, several statements.

Statements are separated by ``;`` outside string literals, quoted identifiers and
comments. ``--`` and ``/* */`` comments are dropped. Query parameters
(``{name:Type}``) are left for the backend, which binds them server-side.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["format_param", "read_sql", "split_statements"]


@cache
def read_sql(*parts: str) -> str:
    """The text of a ``.sql`` file shipped in ``otel_llm/storage`` (e.g. ``"queries", "top_tasks.sql"``)."""
    node = resources.files("otel_llm.storage")
    for part in parts:
        node = node.joinpath(part)
    return node.read_text(encoding="utf-8")


def split_statements(text: str) -> list[str]:
    """The statements of ``text``, comments removed, without their trailing ``;``."""
    out: list[str] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "'\"`":
            j = i + 1
            while j < n:
                if text[j] == "\\":
                    j += 2
                    continue
                if text[j] == ch:
                    if j + 1 < n and text[j + 1] == ch:  # doubled quote escapes itself
                        j += 2
                        continue
                    break
                j += 1
            buf.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif ch == ";":
            out.append("".join(buf))
            buf = []
            i += 1
        else:
            buf.append(ch)
            i += 1
    out.append("".join(buf))
    cleaned = []
    for statement in out:
        lines = [line.rstrip() for line in statement.strip().splitlines()]
        text_ = "\n".join(line for line in lines if line.strip())
        if text_:
            cleaned.append(text_)
    return cleaned


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})


def _quoted(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.translate(_ESCAPES).replace("'", "\\'") + "'"
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return "[" + ",".join(_quoted(v) for v in value) + "]"
    if isinstance(value, dt.datetime | dt.date):
        return "'" + format_param(value) + "'"
    return format_param(value)


def format_param(value: Any) -> str:
    """``value`` in ClickHouse's text format for a query parameter.

    Datetimes are written in UTC (naive ones are taken as UTC); sequences become
    arrays; ``None`` becomes ``\\N`` (NULL).
    """
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_quoted(str(k))}:{_quoted(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return "[" + ",".join(_quoted(v) for v in value) + "]"
    raise TypeError(f"cannot pass a {type(value).__name__} as a ClickHouse query parameter")
