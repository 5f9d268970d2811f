"""The collector's configuration: typed sections, every default here, ``validate()``.

Load it with :func:`load_config` (a YAML file) or :func:`parse_config` (a parsed
mapping); ``Config()`` is the embedded default (`otel-llm collector` with no file).
Every error is a :class:`ConfigError` naming the file and the key path, e.g.
``config.yaml: receivers.otlp.max_request_bytes: expected an integer > 0, got "big"``.
Every option, its default and tuning advice: ``collector/README.md``.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from otel_llm.policy import shown
from otel_llm.storage import StorageConfig
from otel_llm.storage.errors import ConfigError as StorageConfigError

__all__ = [
    "DEFAULT_GRPC_ENDPOINT",
    "DEFAULT_HTTP_ENDPOINT",
    "AlertsConfig",
    "AuthConfig",
    "BudgetProcessorConfig",
    "Config",
    "ConfigError",
    "ControlConfig",
    "ExportersConfig",
    "ForwardConfig",
    "OtlpReceiverConfig",
    "StateConfig",
    "load_config",
    "parse_config",
]

DEFAULT_GRPC_ENDPOINT = "127.0.0.1:4317"
DEFAULT_HTTP_ENDPOINT = "127.0.0.1:4318"
MIB = 1024 * 1024


class ConfigError(ValueError):
    """The collector configuration is invalid; the message names the file and key."""


@dataclass(frozen=True, slots=True)
class ProtocolConfig:
    enabled: bool = True
    endpoint: str = ""
    """``host:port``; ``0.0.0.0:4318`` to listen on every interface (containers)."""

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.endpoint.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)


def _grpc() -> ProtocolConfig:
    return ProtocolConfig(endpoint=DEFAULT_GRPC_ENDPOINT)


def _http() -> ProtocolConfig:
    return ProtocolConfig(endpoint=DEFAULT_HTTP_ENDPOINT)


@dataclass(frozen=True, slots=True)
class OtlpReceiverConfig:
    grpc: ProtocolConfig = field(default_factory=_grpc)
    http: ProtocolConfig = field(default_factory=_http)
    max_request_bytes: int = 20 * MIB
    """Largest request after decompression (413 / RESOURCE_EXHAUSTED beyond)."""
    max_concurrent_requests: int = 32
    """Export requests being processed at once; more are answered 503 + Retry-After."""
    retry_after: int = 1
    """Seconds, in ``Retry-After`` (HTTP) and RetryInfo (gRPC) when shedding load."""
    grpc_workers: int = 8


@dataclass(frozen=True, slots=True)
class ReceiversConfig:
    otlp: OtlpReceiverConfig = field(default_factory=OtlpReceiverConfig)


@dataclass(frozen=True, slots=True)
class AuthConfig:
    bearer_token: str | None = field(default=None, repr=False)
    """Required ``Authorization: Bearer <token>`` on every endpoint (OTLP, control, metrics)."""
    bearer_token_env: str | None = None
    """Name of an environment variable holding the token (keeps it out of the file)."""

    def token(self, environ: Mapping[str, str] | None = None) -> str | None:
        if self.bearer_token:
            return self.bearer_token
        if self.bearer_token_env:
            env = os.environ if environ is None else environ
            return env.get(self.bearer_token_env) or None
        return None


@dataclass(frozen=True, slots=True)
class BudgetProcessorConfig:
    policy_file: str | None = None
    """Budget policy YAML (``otel_llm.policy`` format); default ``$OTEL_LLM_BUDGETS``."""
    max_active_tasks: int = 200_000
    """Tasks whose state is held; the least recently seen is evicted beyond (counted)."""
    retired_tasks: int = 200_000
    """Finished or evicted tasks whose spend is kept, so late spans add to it."""
    decision_cache_size: int = 1_000_000
    """Kill decisions remembered (task ids), so late spans of killed tasks are recognised."""
    idle_timeout: float = 300.0
    """Seconds without a span after which a task is finished."""
    killed_task_max_spans: int = 100
    """Spans of a killed task still stored (tagged); later ones are refused (partial_success)."""
    price_unpriced_spans: bool = True
    """Price inference spans that carry tokens but no ``otel_llm.cost.usd``."""


@dataclass(frozen=True, slots=True)
class ProcessorsConfig:
    budget: BudgetProcessorConfig = field(default_factory=BudgetProcessorConfig)


@dataclass(frozen=True, slots=True)
class ForwardConfig:
    endpoint: str | None = None
    """Downstream OTLP/HTTP base URL (``http://host:4318``); nothing is forwarded without it."""
    headers: Mapping[str, str] = field(default_factory=dict)
    signals: tuple[str, ...] = ("traces", "metrics", "logs")
    timeout: float = 10.0
    queue_size: int = 1000
    """Requests waiting to be forwarded; beyond it the oldest is dropped (counted)."""


@dataclass(frozen=True, slots=True)
class ExportersConfig:
    storage: bool = True
    """Write spans and budget events to ClickHouse (the ``storage:`` section)."""
    otlp: ForwardConfig = field(default_factory=ForwardConfig)


@dataclass(frozen=True, slots=True)
class ControlConfig:
    kill_log_size: int = 100_000
    """Kill decisions served by ``GET /v1/kills`` (oldest dropped beyond)."""
    max_wait: float = 30.0
    """Longest long-poll a ``wait=`` may ask for, seconds."""
    max_kills_per_response: int = 1000


@dataclass(frozen=True, slots=True)
class StateConfig:
    dir: str = ".otel-llm/collector"
    """Journal and snapshots of per-task and per-window spend (restart recovery)."""
    snapshot_interval: float = 10.0
    """Seconds between snapshots; the journal holds what happened since the last one."""


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    link_template: str | None = None
    """URL to a task in Grafana, ``{task_id}`` replaced, e.g.
    ``http://grafana:3000/d/otel-llm-task?var-task_id={task_id}``."""


@dataclass(frozen=True, slots=True)
class Config:
    receivers: ReceiversConfig = field(default_factory=ReceiversConfig)
    processors: ProcessorsConfig = field(default_factory=ProcessorsConfig)
    exporters: ExportersConfig = field(default_factory=ExportersConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    state: StateConfig = field(default_factory=StateConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    source: str = field(default="defaults", compare=False)

    def validate(self) -> None:
        """Cross-field checks (types are checked when parsing)."""
        where = self.source
        otlp = self.receivers.otlp
        for name in ("grpc", "http"):
            proto: ProtocolConfig = getattr(otlp, name)
            path = f"receivers.otlp.{name}.endpoint"
            host, _, port = proto.endpoint.rpartition(":")
            if not host or not port.isdigit() or not 0 <= int(port) < 65536:
                raise ConfigError(f"{where}: {path}: expected host:port, got {proto.endpoint!r}")
        if not (otlp.grpc.enabled or otlp.http.enabled):
            raise ConfigError(f"{where}: receivers.otlp: enable grpc or http (or both)")
        budget = self.processors.budget
        if budget.decision_cache_size < budget.max_active_tasks:
            raise ConfigError(
                f"{where}: processors.budget.decision_cache_size: expected at least "
                f"max_active_tasks ({budget.max_active_tasks}), got {budget.decision_cache_size}"
            )
        forward = self.exporters.otlp
        if forward.endpoint is not None and not forward.endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: exporters.otlp.endpoint: expected an http(s):// URL")
        for signal in forward.signals:
            if signal not in ("traces", "metrics", "logs"):
                raise ConfigError(f"{where}: exporters.otlp.signals: unknown signal {signal!r}")
        if self.auth.bearer_token_env and not self.auth.token():
            raise ConfigError(f"{where}: auth.bearer_token_env: ${self.auth.bearer_token_env} is not set")
        if self.alerts.link_template is not None and "{task_id}" not in self.alerts.link_template:
            raise ConfigError(f"{where}: alerts.link_template: expected a URL containing {{task_id}}")


# -- parsing ---------------------------------------------------------------------------

# Numbers that may be zero; every other number must be > 0.
_MAY_BE_ZERO = frozenset({"killed_task_max_spans"})


def _fail(where: str, path: str, expected: str, got: Any) -> ConfigError:
    return ConfigError(f"{where}: {path}: expected {expected}, got {shown(got)}")


def _convert(kind: Any, value: Any, where: str, path: str, name: str, base: Any = None) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, where, path, name)
    if is_dataclass(kind):
        return _build(kind, value, where, path, base)
    if kind is bool:
        if not isinstance(value, bool):
            raise _fail(where, path, "true or false", value)
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, path, "an integer" + (" >= 0" if name in _MAY_BE_ZERO else " > 0"), value)
        if value < 0 or (value == 0 and name not in _MAY_BE_ZERO):
            raise _fail(where, path, "an integer" + (" >= 0" if name in _MAY_BE_ZERO else " > 0"), value)
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise _fail(where, path, "a number > 0 (seconds)", value)
        return float(value)
    if kind is str:
        if not isinstance(value, str) or not value:
            raise _fail(where, path, "a non-empty string", value)
        return value
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _fail(where, path, "a list of strings", value)
        return tuple(value)
    if origin is Mapping:
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise _fail(where, path, "a mapping of strings to strings", value)
        return dict(value)
    raise TypeError(f"no parser for {kind!r}")  # a bug in this module, not in the file


def _build(cls: type, data: Any, where: str, path: str, base: Any = None) -> Any:
    """``cls`` from ``data``; keys not given keep their value in ``base`` (the field's
    default, which for nested sections may differ from the class's own defaults)."""
    if base is None:
        base = cls()
    if data is None:
        return base
    if not isinstance(data, Mapping):
        raise _fail(where, path or "(top level)", "a mapping", data)
    hints = typing.get_type_hints(cls)
    defaults = {f.name: f for f in fields(cls)}
    known = [name for name in defaults if name != "source"]
    values = {}
    for key, value in data.items():
        full = f"{path}.{key}" if path else str(key)
        if key not in known:
            raise ConfigError(f"{where}: {full}: unknown key; expected one of {', '.join(known)}")
        if key == "storage" and cls is Config:
            values[key] = _storage(value, where)
            continue
        default = getattr(base, key)
        values[key] = _convert(
            hints[key], value, where, full, key, default if is_dataclass(default) else None
        )
    return replace(base, **values)


def _storage(value: Any, where: str) -> StorageConfig:
    if value is not None and not isinstance(value, Mapping):
        raise _fail(where, "storage", "a mapping", value)
    try:
        return StorageConfig.from_mapping(value)
    except StorageConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def parse_config(data: Any, source: str = "config") -> Config:
    """Validate a parsed config document; ``source`` names it in error messages."""
    built = _build(Config, data, source, "")
    config = Config(
        **{f.name: getattr(built, f.name) for f in fields(Config) if f.name != "source"}, source=source
    )
    config.validate()
    return config


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read and validate a config file; ``None`` gives the embedded defaults."""
    if path is None:
        config = Config()
        config.validate()
        return config
    source = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the collector config: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{source}: not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    return parse_config(data, source)
