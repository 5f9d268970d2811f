"""Process-wide settings of tasks: the budget configuration and the tracer provider of
task and tool spans. Set in code with :func:`configure`; otherwise read from the
environment (:mod:`otel_llm.policy`) at the first task."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from otel_llm import __version__
from otel_llm.policy import BudgetConfig, config_from_env
from otel_llm.tasks.state import STATE

__all__ = [
    "SCOPE",
    "config",
    "configure",
    "configured",
    "process_name",
    "resource_attributes",
    "tracer",
    "tracer_provider",
    "use_tracer_provider",
]

SCOPE = "otel_llm.tasks"


def configure(
    config: BudgetConfig | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> BudgetConfig:
    """Set the budget configuration (default: read from ``environ``, default
    ``os.environ``) and, optionally, the tracer provider for task and tool spans (default:
    the global one). Raises :class:`PolicyError` for a bad configuration."""
    loaded = config if config is not None else config_from_env(environ)
    with STATE.settings_lock:
        STATE.config = loaded
        if tracer_provider is not None:
            STATE.tracer_provider = tracer_provider
        STATE.resource_cache = None
    return loaded


def configured() -> bool:
    """Whether a budget configuration is set (in code, or read at a first task)."""
    return STATE.config is not None


def use_tracer_provider(tracer_provider: trace.TracerProvider) -> None:
    """Emit task and tool spans through ``tracer_provider`` from now on."""
    with STATE.settings_lock:
        STATE.tracer_provider = tracer_provider


def config() -> BudgetConfig:
    """The budget configuration; read from the environment the first time if not set."""
    found = STATE.config
    if found is None:
        with STATE.settings_lock:
            if STATE.config is None:
                STATE.config = config_from_env()
            found = STATE.config
    return found


def tracer_provider() -> trace.TracerProvider:
    """The tracer provider of task and tool spans: the configured one, else the global one."""
    return STATE.tracer_provider or trace.get_tracer_provider()


def tracer() -> trace.Tracer:
    return trace.get_tracer(SCOPE, __version__, STATE.tracer_provider)


def resource_attributes() -> dict[str, Any]:
    """The resource attributes of :func:`tracer_provider` (cached per provider)."""
    provider = tracer_provider()
    cached = STATE.resource_cache
    if cached is not None and cached[0] == id(provider):
        return cached[1]
    resource = getattr(provider, "resource", None)
    found = dict(getattr(resource, "attributes", None) or {})
    STATE.resource_cache = (id(provider), found)
    return found


def process_name() -> str:
    """The name of this process's automatic task: ``service.name``, else the script."""
    service = resource_attributes().get("service.name")
    if service and not str(service).startswith("unknown_service"):
        return str(service)
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return script or "python"
