"""The report's, the CLI's and the dashboards' questions, as named ``.sql`` files.

Each file in ``otel_llm/storage/queries/`` is one ClickHouse query with named
parameters (``{start:DateTime64(9)}``), bound by the server. Grafana panels can use the
same text with their own macros. Run one by name::

    rows = queries.run(backend, "top_tasks", start=t0, end=t1, limit=10)

Parameters a query declares but the caller omits get :data:`DEFAULTS` (``service=''``
means every service, ``limit=20``); any other missing one is an error naming it.

=====================  =================================================================
name                   answers
=====================  =================================================================
``summary``            calls, tasks, cost, tokens, cache hit ratio, error rate
``task_cost``          cost and tokens per task: exact p50/p95, average, total
``top_tasks``          the most expensive tasks, with iterations and budget state
``task_iterations``    model calls per task: p50/p95/max
``token_ratio``        input:output ratio and cache hit ratio per model, and overall
``cache_by_prefix``    cache hit ratio, reads per write against break-even, savings
``model_mix``          share of calls and of cost per model
``ttft``               time to first chunk p50/p90/p95/p99 per model
``drift``              every figure against its own baseline window
``version_compare``    every figure for one ``service.version`` against another
``budget_events``      recent warnings, kills and alerts
=====================  =================================================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from otel_llm.storage.backend import Backend
from otel_llm.storage.statements import read_sql

__all__ = ["DEFAULTS", "load", "names", "parameters", "run"]

DEFAULTS: dict[str, Any] = {"service": "", "limit": 20}

_PARAM = re.compile(r"\{(\w+):([^}]+)\}")


def names() -> list[str]:
    """The names of every shipped query."""
    files = resources.files("otel_llm.storage").joinpath("queries").iterdir()
    return sorted(f.name[:-4] for f in files if f.name.endswith(".sql"))


@cache
def load(name: str) -> str:
    """The SQL text of query ``name``."""
    if name not in names():
        raise KeyError(f"no query named {name!r}; known: {', '.join(names())}")
    return read_sql("queries", f"{name}.sql")


def parameters(name: str) -> dict[str, str]:
    """``{parameter: ClickHouse type}`` of query ``name``."""
    return {m.group(1): m.group(2) for m in _PARAM.finditer(load(name))}


def run(
    backend: Backend, name: str, params: Mapping[str, Any] | None = None, **kw: Any
) -> list[dict[str, Any]]:
    """Run query ``name`` with ``params`` (and/or keyword parameters); rows as dicts."""
    given = {**(params or {}), **kw}
    declared = parameters(name)
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise TypeError(
            f"query {name!r} has no parameter(s) {', '.join(unknown)}; it takes {', '.join(declared)}"
        )
    values = {k: given.get(k, DEFAULTS.get(k)) for k in declared}
    missing = sorted(k for k, v in values.items() if v is None)
    if missing:
        raise TypeError(f"query {name!r} needs parameter(s) {', '.join(missing)}")
    return backend.query(load(name), values).dicts()
