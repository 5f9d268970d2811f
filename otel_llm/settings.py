"""Process-wide settings of tasks: the budget configuration and the tracer provider of
task and tool spans. Set in code with :func:`configure`; otherwise read from the
environment (:mod:`otel_llm.policy`) at the first task."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from otel_llm import __version__
from otel_llm.policy import BudgetConfig, config_from_env

SCOPE = "otel_llm.tasks"


class _Settings:
    lock = threading.RLock()
    config: BudgetConfig | None = None
    tracer_provider: trace.TracerProvider | None = None
    resource_cache: tuple[int, dict[str, Any]] | None = None


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
    with _Settings.lock:
        _Settings.config = loaded
        if tracer_provider is not None:
            _Settings.tracer_provider = tracer_provider
        _Settings.resource_cache = None
    return loaded


def _config() -> BudgetConfig:
    config = _Settings.config
    if config is None:
        with _Settings.lock:
            if _Settings.config is None:
                _Settings.config = config_from_env()
            config = _Settings.config
    return config


def _provider() -> trace.TracerProvider:
    return _Settings.tracer_provider or trace.get_tracer_provider()


def _tracer() -> trace.Tracer:
    return trace.get_tracer(SCOPE, __version__, _Settings.tracer_provider)


def _resource_attributes() -> dict[str, Any]:
    provider = _provider()
    cached = _Settings.resource_cache
    if cached is not None and cached[0] == id(provider):
        return cached[1]
    resource = getattr(provider, "resource", None)
    found = dict(getattr(resource, "attributes", None) or {})
    _Settings.resource_cache = (id(provider), found)
    return found
