"""The query dialect: ClickHouse SQL with the Grafana ClickHouse plugin's macros and
dashboard variables, and its two renderings.

The named queries (``otel_llm/storage/queries/*.sql``) are written once, as a Grafana
panel would hold them::

    SELECT $__timeInterval(timestamp) AS t, sum(cost_usd) AS cost_usd
    FROM llm_calls FINAL
    WHERE $__timeFilter(timestamp)
        AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
    GROUP BY t ORDER BY t

and rendered two ways:

- :func:`bind` for the report, the CLI and tests: every macro and variable becomes a
  ClickHouse query parameter bound by the server (``$__timeFilter(c)`` ->
  ``c >= {start:DateTime64(9)} AND c < {end:DateTime64(9)}``, a half-open window;
  ``${service:singlequote}`` -> ``{service:String}``; ``$__conditionalAll(cond, $v)`` ->
  ``({v:String} = '' OR cond)``, so ``''`` means every value).
- :func:`expand` does what Grafana and the plugin do to the panel SQL before it reaches
  ClickHouse (``$__conditionalAll`` and the variables in the browser, then the time
  macros in the plugin's backend), with literal values: the tests run panel SQL exactly
  as a dashboard would send it.

Supported: ``$__timeFilter``, ``$__timeFilter_ms``, ``$__dateFilter``, ``$__fromTime``,
``$__toTime``, ``$__fromTime_ms``, ``$__toTime_ms``, ``$__timeInterval``,
``$__timeInterval_ms``, ``$__interval_s``, ``$__conditionalAll``; variables as
``${name:singlequote}`` (a string, or a multi-value list) or ``${name}`` (a number,
typed by :data:`NUMBER_VARIABLES`). Anything else is refused by name.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "ALL",
    "NUMBER_VARIABLES",
    "DialectError",
    "GrafanaContext",
    "bind",
    "expand",
    "interpolate",
    "variables",
]

ALL = "$__all"
"""The value Grafana gives a variable whose "All" option is selected."""

NUMBER_VARIABLES: dict[str, str] = {
    "limit": "UInt32",
    "ttft_slo_s": "Float64",
    "repeat_window_s": "UInt32",
    "baseline_s": "UInt32",
    "factor": "Float64",
}
"""Variables used bare (``${name}``) and the ClickHouse type each binds as."""

_TIME_MACROS = {"timeFilter", "timeFilter_ms", "dateFilter", "fromTime", "toTime", "fromTime_ms", "toTime_ms"}
_MACRO = re.compile(r"\$__(\w+)")
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(?!__)(\w+)")


class DialectError(ValueError):
    """A query uses a macro, variable or format the dialect does not know."""


@dataclass(frozen=True)
class GrafanaContext:
    """What Grafana knows when it runs a panel: the time range, the interval, variables."""

    start: dt.datetime
    end: dt.datetime
    interval_s: int = 60
    values: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    """Variable -> its selected value(s); :data:`ALL` for the "All" option."""
    options: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Variable -> every option it offers (what "All" expands to)."""


def _args(sql: str, open_at: int) -> tuple[list[str], int]:
    """The comma-separated arguments of the call whose ``(`` is at ``open_at``, and the
    index after its ``)``. Commas inside nested parentheses or quotes do not split."""
    depth, i, start, out = 0, open_at, open_at + 1, []
    quote = ""
    while i < len(sql):
        ch = sql[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                out.append(sql[start:i].strip())
                return out, i + 1
        elif ch == "," and depth == 1:
            out.append(sql[start:i].strip())
            start = i + 1
        i += 1
    raise DialectError(f"unbalanced parentheses after {sql[max(0, open_at - 20) : open_at + 1]!r}")


def _macros(sql: str, replace: callable) -> str:  # type: ignore[valid-type]
    """``sql`` with every ``$__name(...)``/``$__name`` replaced by ``replace(name, args)``."""
    out, pos = [], 0
    for match in _MACRO.finditer(sql):
        if match.start() < pos:
            continue
        name, end = match.group(1), match.end()
        args: list[str] | None = None
        if end < len(sql) and sql[end] == "(":
            args, end = _args(sql, end)
        out.append(sql[pos : match.start()])
        out.append(replace(name, args))
        pos = end
    out.append(sql[pos:])
    return "".join(out)


def _one_arg(name: str, args: list[str] | None, count: int = 1) -> list[str]:
    if args is None or len(args) != count:
        raise DialectError(f"$__{name} takes {count} argument(s), got {0 if args is None else len(args)}")
    return args


def _split_conditional(args: list[str] | None) -> tuple[str, str]:
    if not args or len(args) < 2:
        raise DialectError("$__conditionalAll takes a condition and a $variable")
    variable = args[-1]
    match = re.fullmatch(r"\$\{?(\w+)\}?", variable)
    if not match:
        raise DialectError(f"$__conditionalAll's last argument must be a $variable, got {variable!r}")
    return ", ".join(args[:-1]), match.group(1)


def variables(sql: str) -> dict[str, str]:
    """``{variable: ClickHouse type}`` of every dashboard variable ``sql`` uses."""
    out: dict[str, str] = {}
    for match in _VARIABLE.finditer(_MACRO.sub("", sql)):
        name = match.group(1) or match.group(3)
        out[name] = NUMBER_VARIABLES.get(name, "String")
    return out


# -- bound parameters ----------------------------------------------------------------


def _bind_variables(sql: str) -> str:
    def one(match: re.Match[str]) -> str:
        name, fmt, bare = match.group(1), match.group(2), match.group(3)
        name = name or bare
        if fmt == "singlequote":
            return f"{{{name}:String}}"
        if fmt is None and name in NUMBER_VARIABLES:
            return f"{{{name}:{NUMBER_VARIABLES[name]}}}"
        raise DialectError(
            f"variable {match.group(0)} must be written ${{{name}:singlequote}} (a string) "
            f"or be a number variable ({', '.join(NUMBER_VARIABLES)})"
        )

    return _VARIABLE.sub(one, sql)


def bind(sql: str) -> str:
    """``sql`` with macros and variables as server-bound query parameters.

    Parameters: ``start``, ``end`` (DateTime64(9)), ``interval_s`` (UInt32), each string
    variable as String (``''`` = all) and each number variable as its type."""

    def macro(name: str, args: list[str] | None) -> str:
        if name in ("timeFilter", "timeFilter_ms", "dateFilter"):
            (column,) = _one_arg(name, args)
            return f"{column} >= {{start:DateTime64(9)}} AND {column} < {{end:DateTime64(9)}}"
        if name in ("fromTime", "fromTime_ms"):
            return "{start:DateTime64(9)}"
        if name in ("toTime", "toTime_ms"):
            return "{end:DateTime64(9)}"
        if name in ("timeInterval", "timeInterval_ms"):
            (column,) = _one_arg(name, args)
            # DateTime64: both backends hand it to Python as a datetime (chDB gives DateTime
            # as seconds).
            bucket = f"toStartOfInterval(toDateTime({column}), toIntervalSecond({{interval_s:UInt32}}))"
            return f"toDateTime64({bucket}, 0)"
        if name == "interval_s":
            return "{interval_s:UInt32}"
        if name == "conditionalAll":
            condition, variable = _split_conditional(args)
            return f"({{{variable}:String}} = '' OR {_bind_variables(bind(condition))})"
        raise DialectError(f"unknown macro $__{name}")

    return _bind_variables(_macros(sql, macro))


# -- what Grafana sends ----------------------------------------------------------------


def _quote(value: str) -> str:
    # Grafana's singlequote format: each value in single quotes, quotes escaped with \.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _selected(context: GrafanaContext, name: str) -> list[str]:
    if name not in context.values:
        raise DialectError(f"variable ${name} has no value in this dashboard context")
    value = context.values[name]
    if value == ALL or (not isinstance(value, str) and ALL in value):
        return list(context.options.get(name, []))
    return [value] if isinstance(value, str) else list(value)


def _is_all(context: GrafanaContext, name: str) -> bool:
    value = context.values.get(name)
    if value == ALL or (value is not None and not isinstance(value, str) and ALL in value):
        return True
    options = context.options.get(name)
    # The plugin also treats "every option selected" as All.
    return bool(options) and value is not None and not isinstance(value, str) and set(value) >= set(options)


def interpolate(sql: str, context: GrafanaContext) -> str:
    """What Grafana's browser does before the query leaves it: ``$__conditionalAll`` and
    the variables, with literal values; the time macros are left for the plugin."""

    def conditional(name: str, args: list[str] | None) -> str:
        if name != "conditionalAll":
            return f"$__{name}" + ("" if args is None else "(" + ", ".join(args) + ")")
        condition, variable = _split_conditional(args)
        return "1=1" if _is_all(context, variable) else condition

    def variable(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        values = _selected(context, name)
        if match.group(2) == "singlequote":
            # An empty multi-select renders as nothing in Grafana; '' keeps the SQL valid.
            return ",".join(_quote(v) for v in values) or "''"
        if match.group(2) is not None:
            raise DialectError(f"variable format {match.group(2)!r} is not used by these queries")
        return ",".join(values)

    return _VARIABLE.sub(variable, _macros(sql, conditional))


def expand(sql: str, context: GrafanaContext) -> str:
    """``sql`` as the ClickHouse plugin sends it for ``context`` (literal values): first
    :func:`interpolate` (the browser), then the time macros (the plugin's backend)."""
    seconds = max(int(context.interval_s), 1)
    start_s, end_s = math.floor(context.start.timestamp()), math.floor(context.end.timestamp())
    start_ms = math.floor(context.start.timestamp() * 1000)
    end_ms = math.floor(context.end.timestamp() * 1000)

    def time_macro(name: str, args: list[str] | None) -> str:
        # The plugin's backend (pkg/macros): whole seconds, or milliseconds for _ms.
        if name == "timeFilter":
            (c,) = _one_arg(name, args)
            return f"{c} >= toDateTime({start_s}) AND {c} <= toDateTime({end_s})"
        if name == "timeFilter_ms":
            (c,) = _one_arg(name, args)
            lo, hi = f"fromUnixTimestamp64Milli({start_ms})", f"fromUnixTimestamp64Milli({end_ms})"
            return f"{c} >= {lo} AND {c} <= {hi}"
        if name == "dateFilter":
            (c,) = _one_arg(name, args)
            d0, d1 = context.start.astimezone(dt.UTC).date(), context.end.astimezone(dt.UTC).date()
            return f"{c} >= toDate('{d0}') AND {c} <= toDate('{d1}')"
        if name == "fromTime":
            return f"toDateTime({start_s})"
        if name == "toTime":
            return f"toDateTime({end_s})"
        if name == "fromTime_ms":
            return f"fromUnixTimestamp64Milli({start_ms})"
        if name == "toTime_ms":
            return f"fromUnixTimestamp64Milli({end_ms})"
        if name == "timeInterval":
            (c,) = _one_arg(name, args)
            return f"toStartOfInterval(toDateTime({c}), INTERVAL {seconds} second)"
        if name == "timeInterval_ms":
            (c,) = _one_arg(name, args)
            return f"toStartOfInterval(toDateTime64({c}, 3), INTERVAL {seconds * 1000} millisecond)"
        if name == "interval_s":
            return str(seconds)
        raise DialectError(f"unknown macro $__{name}")

    return _macros(interpolate(sql, context), time_macro)
