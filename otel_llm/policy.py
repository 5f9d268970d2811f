"""Budget policy: the YAML file shared by the agent-side guard and the collector, and the
limits set by environment variables.

This module holds no agent-side state (the collector imports it): it parses, validates
and matches; :mod:`otel_llm.tasks` applies the result.

The file (``OTEL_LLM_BUDGETS=path``)::

    warn_at: 0.8                      # soft threshold, fraction of each limit (0 < x <= 1)
    policies:
      - name: coding-agent                        # required, unique
        match: {service.name: coding-agent}       # optional; all keys must match
        per_task: {max_usd: 0.50, max_tokens: 400000, max_iterations: 30,
                   max_seconds: 600, max_tool_calls: 100}
        on_exceed: kill                           # kill (default) | alert
        warn_at: 0.9                              # optional, overrides the top-level one
      - name: tenant-daily                        # a window budget: enforced by the collector
        match: {tenant: "*"}
        group_by: tenant
        window: 1d                                # <number><s|m|h|d|w>
        max_usd: 100
    alerts:                                       # read by the collector only
      webhook: {url: http://127.0.0.1:9000/hook,  # optional headers, e.g. a token
                headers: {Authorization: Bearer s3cret}}
      slack: {url: "${SLACK_WEBHOOK_URL}"}        # ${NAME}: from the collector's environment
      alertmanager: {url: http://127.0.0.1:9093,  # POST {url}/api/v2/alerts
                     resolve_after: 1h}           # endsAt of a task alert (default 1h)
      retry: {attempts: 5, initial_backoff: 0.5, max_backoff: 30}   # seconds (or 30s, 5m)
      timeout: 5                                  # seconds per attempt
      queue_size: 1000                            # alerts waiting per target
    collector_url: http://127.0.0.1:4318          # optional: the agent side follows its kills
                                                  # (or $OTEL_LLM_COLLECTOR_URL); several
                                                  # collectors comma-separated

``match`` keys are looked up, in this order, among the task's own attributes, the
resource attributes (``service.name``, ...) and the task name (under ``task.name``,
``otel_llm.task.name`` and ``gen_ai.agent.name``). A value is a glob (``fnmatch``, case
sensitive; ``"*"`` = the attribute is present). A policy without ``match`` matches every
task. Every policy that matches a task and has ``per_task`` limits applies: per limit,
the smallest value wins, and the task is killed on exceed if any of them says ``kill``.
``group_by``/``window``/``max_usd`` budgets span many tasks; only the collector, which
sees every process, enforces them.

Environment variables (each optional): ``OTEL_LLM_MAX_USD``, ``OTEL_LLM_MAX_TOKENS``,
``OTEL_LLM_MAX_ITERATIONS``, ``OTEL_LLM_MAX_SECONDS``, ``OTEL_LLM_MAX_TOOL_CALLS``,
``OTEL_LLM_WARN_AT``, ``OTEL_LLM_ON_EXCEED`` (kill|alert). They are the defaults of every
task; a matching policy overrides them limit by limit (and a policy file's ``warn_at``
overrides ``OTEL_LLM_WARN_AT``), and explicit ``otel_llm.task(...)`` arguments override both.
(Every environment variable with its default: ``docs/telemetry.md``.)

Every error names the place (``file: policies[0].per_task.max_usd`` or the variable) and
what was expected, e.g. ``policy.yaml: policies[0].per_task.max_usd: expected a number >
0, got "abc"``; it is raised as :class:`PolicyError` (a ``ValueError``).
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

__all__ = [
    "ALERT_TARGETS",
    "ENV_BUDGETS",
    "ENV_LIMITS",
    "INTEGER_LIMITS",
    "LIMIT_NAMES",
    "Alerts",
    "BudgetConfig",
    "Limits",
    "OnExceed",
    "Policy",
    "PolicyError",
    "PolicyFile",
    "Resolved",
    "config_from_env",
    "duration_seconds",
    "load_policy_file",
    "parse_policy",
    "redact_url",
]

ENV_BUDGETS = "OTEL_LLM_BUDGETS"
ENV_WARN_AT = "OTEL_LLM_WARN_AT"
ENV_ON_EXCEED = "OTEL_LLM_ON_EXCEED"

DEFAULT_WARN_AT = 0.8
OnExceed = Literal["kill", "alert"]
"""What a task does when a limit is reached: refuse the next call, or only record it."""
ON_EXCEED_VALUES: tuple[str, ...] = ("kill", "alert")

_WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_WINDOW_RE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
TASK_NAME_KEYS = ("task.name", "otel_llm.task.name", "gen_ai.agent.name")
ALERT_TARGETS: tuple[str, ...] = ("webhook", "slack", "alertmanager")
_TARGET_KEYS = {
    "webhook": ("url", "headers"),
    "slack": ("url",),  # an incoming webhook: the URL is the credential
    "alertmanager": ("url", "headers", "resolve_after"),
}
DEFAULT_INITIAL_BACKOFF = 0.5
DEFAULT_MAX_BACKOFF = 30.0


class PolicyError(ValueError):
    """A budget policy file or value is invalid; the message names where and why."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-task limits; ``None`` = no limit of that kind."""

    max_usd: float | None = None
    max_tokens: int | None = None
    """Input plus output tokens (cached input included)."""
    max_iterations: int | None = None
    """Model calls."""
    max_seconds: float | None = None
    """Wall time since the task started."""
    max_tool_calls: int | None = None

    def items(self) -> Iterator[tuple[str, float]]:
        """The limits that are set, in declaration order."""
        for name in LIMIT_NAMES:
            value = getattr(self, name)
            if value is not None:
                yield name, value

    def __bool__(self) -> bool:
        return any(getattr(self, name) is not None for name in LIMIT_NAMES)

    def over(self, base: Limits) -> Limits:
        """These limits where set, ``base`` elsewhere."""
        return Limits(
            **{
                f.name: getattr(base, f.name) if getattr(self, f.name) is None else getattr(self, f.name)
                for f in fields(self)
            }
        )

    def strictest(self, other: Limits) -> Limits:
        """Per limit, the smaller of the two (an unset limit loses to a set one)."""
        out = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            out[f.name] = b if a is None else a if b is None else min(a, b)
        return Limits(**out)


LIMIT_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Limits))
"""The limit names, in declaration order: the one list every part iterates."""
INTEGER_LIMITS = frozenset({"max_tokens", "max_iterations", "max_tool_calls"})
"""Limits counted in whole units; the others are real numbers."""
ENV_LIMITS = {name: f"OTEL_LLM_{name.upper()}" for name in LIMIT_NAMES}
"""``max_usd`` -> ``OTEL_LLM_MAX_USD``, ..."""


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    match: Mapping[str, str] = field(default_factory=dict)
    per_task: Limits | None = None
    on_exceed: OnExceed = "kill"
    warn_at: float | None = None
    group_by: str | None = None
    window: str | None = None
    window_seconds: float | None = None
    max_usd: float | None = None
    """The window budget (with ``window``), across all tasks of a group."""

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        for key, pattern in self.match.items():
            value = attributes.get(key)
            if value is None or not fnmatch.fnmatchcase(_text(value), pattern):
                return False
        return True


@dataclass(frozen=True, slots=True)
class Alerts:
    """Where budget alerts go and how they are delivered (the collector sends them)."""

    # URLs and headers carry secrets (a Slack webhook URL is one): kept out of repr.
    webhook_url: str | None = field(default=None, repr=False)
    slack_url: str | None = field(default=None, repr=False)
    alertmanager_url: str | None = field(default=None, repr=False)
    webhook_headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    alertmanager_headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    resolve_after: float = 3600.0
    """Seconds after which Alertmanager resolves a task alert (its ``endsAt``); a window
    alert resolves when its window ends."""
    timeout: float = 5.0
    """Seconds per delivery attempt."""
    attempts: int = 5
    """Delivery attempts per alert and target, the first included."""
    initial_backoff: float = DEFAULT_INITIAL_BACKOFF
    """Seconds before the first retry; doubled each retry, with jitter, up to ``max_backoff``."""
    max_backoff: float = DEFAULT_MAX_BACKOFF
    queue_size: int = 1000
    """Alerts waiting per target; beyond it new alerts for that target are dropped (counted)."""

    @property
    def targets(self) -> tuple[str, ...]:
        """The configured targets, of ``ALERT_TARGETS``."""
        return tuple(name for name in ALERT_TARGETS if getattr(self, f"{name}_url") is not None)

    def expanded(self, environ: Mapping[str, str] | None = None) -> Alerts:
        """These settings with every ``${NAME}`` in a URL or header value replaced by the
        environment variable ``NAME`` (so secrets stay out of the file). Raises
        ``PolicyError`` naming the key when a variable is unset or a URL is not one."""
        env = os.environ if environ is None else environ
        changes: dict[str, Any] = {}
        for name in ALERT_TARGETS:
            url = getattr(self, f"{name}_url")
            if url is None:
                continue
            expanded = _expand(url, f"alerts.{name}.url", env)
            if not _is_http_url(expanded):
                raise PolicyError(
                    f"alerts.{name}.url: expected an http:// or https:// URL, got "
                    f'"{redact_url(expanded)}" from the environment'
                )
            changes[f"{name}_url"] = expanded
        for name in ("webhook", "alertmanager"):
            headers = getattr(self, f"{name}_headers")
            changes[f"{name}_headers"] = {
                key: _expand(value, f"alerts.{name}.headers.{key}", env) for key, value in headers.items()
            }
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class PolicyFile:
    warn_at: float = DEFAULT_WARN_AT
    policies: tuple[Policy, ...] = ()
    alerts: Alerts = field(default_factory=Alerts)
    collector_url: str | None = None
    """Collector(s) whose kill decisions the agent side follows (comma-separated)."""
    source: str | None = None

    def matching(self, attributes: Mapping[str, Any]) -> list[Policy]:
        return [p for p in self.policies if p.matches(attributes)]


@dataclass(frozen=True, slots=True)
class Resolved:
    """The budget settings of one task, after policy and environment."""

    limits: Limits
    warn_at: float
    on_exceed: OnExceed
    policies: tuple[str, ...] = ()
    """Names of the policies that contributed limits."""


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """Everything the environment configures: the policy file and the limit variables."""

    policy: PolicyFile | None = None
    env_limits: Limits = field(default_factory=Limits)
    env_warn_at: float | None = None
    env_on_exceed: OnExceed | None = None

    @property
    def empty(self) -> bool:
        return self.policy is None and not self.env_limits

    def resolve(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        resource: Mapping[str, Any] | None = None,
    ) -> Resolved:
        """The limits for a task called ``name`` with these attributes, in a process with
        this resource: matching policies (strictest wins) over the environment."""
        warn_at = self.env_warn_at if self.env_warn_at is not None else DEFAULT_WARN_AT
        on_exceed: OnExceed = self.env_on_exceed or "kill"
        if self.policy is None:
            return Resolved(self.env_limits, warn_at, on_exceed)
        warn_at = self.policy.warn_at
        view: dict[str, Any] = {key: name for key in TASK_NAME_KEYS}
        view.update(resource or {})
        view.update(attributes or {})
        per_task: Limits | None = None
        names: list[str] = []
        kill = False
        own_warn_at: list[float] = []
        for policy in self.policy.matching(view):
            if policy.per_task is None:
                continue
            names.append(policy.name)
            per_task = policy.per_task if per_task is None else per_task.strictest(policy.per_task)
            kill = kill or policy.on_exceed == "kill"
            if policy.warn_at is not None:
                own_warn_at.append(policy.warn_at)
        if own_warn_at:
            # A policy's own warn_at overrides the file's; of several, the earliest warning.
            warn_at = min(own_warn_at)
        if per_task is None:
            return Resolved(self.env_limits, warn_at, on_exceed)
        return Resolved(per_task.over(self.env_limits), warn_at, "kill" if kill else "alert", tuple(names))


# -- parsing ---------------------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def shown(value: Any) -> str:
    """How a bad config value is named in an error message."""
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


class _Where:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, expected: str, got: Any) -> PolicyError:
        return PolicyError(f"{self.source}: {path}: expected {expected}, got {shown(got)}")


def parse_number(value: Any, *, integer: bool, where: str, fraction: bool = False) -> float | int:
    """A positive number (or integer, or fraction in (0, 1]); raises ``PolicyError`` whose
    message starts with ``where``. Strings holding numbers are accepted (environment)."""
    expected = "a number > 0 and <= 1" if fraction else "an integer > 0" if integer else "a number > 0"
    raw = value
    if isinstance(value, str):
        try:
            value = int(value.strip()) if integer else float(value.strip())
        except ValueError:
            raise PolicyError(f"{where}: expected {expected}, got {shown(raw)}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(f"{where}: expected {expected}, got {shown(raw)}")
    if integer and isinstance(value, float):
        if not value.is_integer():
            raise PolicyError(f"{where}: expected {expected}, got {shown(raw)}")
        value = int(value)
    if not math.isfinite(value) or value <= 0 or (fraction and value > 1):
        raise PolicyError(f"{where}: expected {expected}, got {shown(raw)}")
    return value


def _mapping(where: _Where, path: str, value: Any, known: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise where.fail(path, "a mapping", value)
    for key in value:
        if key not in known:
            shown = f"{path}.{key}" if path else str(key)
            raise PolicyError(f"{where.source}: {shown}: unknown key; expected one of {', '.join(known)}")
    return value


def _limits(where: _Where, path: str, value: Any) -> Limits:
    data = _mapping(where, path, value, LIMIT_NAMES)
    if not data:
        raise where.fail(path, f"at least one of {', '.join(LIMIT_NAMES)}", value)
    out = {}
    for key, raw in data.items():
        integer = key in INTEGER_LIMITS
        if isinstance(raw, str):
            # In the file a limit must be a YAML number: a quoted "0.5" is a mistake worth naming.
            raise where.fail(f"{path}.{key}", "an integer > 0" if integer else "a number > 0", raw)
        out[key] = parse_number(raw, integer=integer, where=f"{where.source}: {path}.{key}")
    return Limits(**out)


def _string(where: _Where, path: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise where.fail(path, "a non-empty string", value)
    return value


def _policy(where: _Where, index: int, value: Any, seen: set[str]) -> Policy:
    path = f"policies[{index}]"
    known = ("name", "match", "per_task", "on_exceed", "warn_at", "group_by", "window", "max_usd")
    data = _mapping(where, path, value, known)
    if "name" not in data:
        raise where.fail(f"{path}.name", "a non-empty string", None)
    name = _string(where, f"{path}.name", data["name"])
    if name in seen:
        raise where.fail(f"{path}.name", "a name no other policy has", name)
    seen.add(name)
    match: dict[str, str] = {}
    if data.get("match") is not None:
        raw_match = data["match"]
        if not isinstance(raw_match, Mapping):
            raise where.fail(f"{path}.match", "a mapping of attribute to value", raw_match)
        for key, pattern in raw_match.items():
            if isinstance(pattern, Mapping | list) or pattern is None:
                raise where.fail(f"{path}.match.{key}", "a string, number or boolean", pattern)
            match[str(key)] = _text(pattern)
    per_task = _limits(where, f"{path}.per_task", data["per_task"]) if "per_task" in data else None
    on_exceed = data.get("on_exceed", "kill")
    if on_exceed not in ON_EXCEED_VALUES:
        raise where.fail(f"{path}.on_exceed", "kill or alert", on_exceed)
    warn_at = None
    if "warn_at" in data:
        warn_at = float(
            parse_number(
                data["warn_at"], integer=False, fraction=True, where=f"{where.source}: {path}.warn_at"
            )
        )
    group_by = _string(where, f"{path}.group_by", data["group_by"]) if "group_by" in data else None
    window = window_seconds = max_usd = None
    if "window" in data:
        window = data["window"]
        found = _WINDOW_RE.match(window) if isinstance(window, str) else None
        if found is None or float(found.group(1)) <= 0:
            raise where.fail(f"{path}.window", "a duration such as 30s, 5m, 1h, 1d or 1w", window)
        window_seconds = float(found.group(1)) * _WINDOW_UNITS[found.group(2)]
    if "max_usd" in data:
        if isinstance(data["max_usd"], str):
            raise where.fail(f"{path}.max_usd", "a number > 0", data["max_usd"])
        max_usd = float(parse_number(data["max_usd"], integer=False, where=f"{where.source}: {path}.max_usd"))
    if (window is None) != (max_usd is None):
        missing = "window" if window is None else "max_usd"
        raise where.fail(f"{path}.{missing}", "a value: a window budget needs both window and max_usd", None)
    if group_by is not None and window is None:
        raise where.fail(f"{path}.window", "a duration: group_by needs a window and max_usd", None)
    if per_task is None and window is None:
        raise where.fail(path, "per_task limits, or a window budget (window and max_usd)", value)
    return Policy(
        name=name,
        match=match,
        per_task=per_task,
        on_exceed=on_exceed,
        warn_at=warn_at,
        group_by=group_by,
        window=window,
        window_seconds=window_seconds,
        max_usd=max_usd,
    )


def duration_seconds(text: str) -> float | None:
    """Seconds in a duration such as ``30s``, ``5m``, ``1h``, ``1d``, ``1w`` (a policy's
    ``window``); ``None`` when ``text`` is not one."""
    found = _WINDOW_RE.match(text)
    if found is None or float(found.group(1)) <= 0:
        return None
    return float(found.group(1)) * _WINDOW_UNITS[found.group(2)]


def _seconds(where: _Where, path: str, value: Any) -> float:
    """A duration: a number of seconds > 0, or ``30s``, ``5m``, ``1h``, ``1d``, ``1w``."""
    expected = "a number of seconds > 0 or a duration such as 30s, 5m, 1h"
    if isinstance(value, str):
        seconds = duration_seconds(value)
        if seconds is None:
            raise where.fail(path, expected, value)
        return seconds
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.fail(path, expected, value)
    if not math.isfinite(value) or value <= 0:
        raise where.fail(path, expected, value)
    return float(value)


def _headers(where: _Where, path: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise where.fail(path, "a mapping of header name to value", value)
    out = {}
    for name, text in value.items():
        if not isinstance(name, str) or not re.match(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", name):
            raise PolicyError(f"{where.source}: {path}: {shown(name)} is not a valid header name")
        if not isinstance(text, str) or not text or "\n" in text or "\r" in text:
            # The value is not shown: headers hold secrets.
            raise PolicyError(f"{where.source}: {path}.{name}: expected a non-empty one-line string")
        out[name] = text
    return out


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(text: str, path: str, env: Mapping[str, str]) -> str:
    def value(found: re.Match[str]) -> str:
        got = env.get(found.group(1))
        if not got:
            raise PolicyError(f"{path}: environment variable {found.group(1)} is not set")
        return got

    return _ENV_REF.sub(value, text)


def _is_http_url(url: str) -> bool:
    return bool(re.match(r"^https?://[^/?#\s]+", url)) and not re.search(r"\s", url)


def redact_url(url: str) -> str:
    """``url`` fit for a log or an error message: scheme and host only, the path, query
    and credentials replaced by ``...`` (a Slack webhook URL's path is its secret)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        parts, host, port = None, "", ""
    if parts is None or not parts.scheme or not host:
        return url[:6] + "..." if len(url) > 6 else url
    rest = "/..." if parts.path not in ("", "/") or parts.query or parts.fragment else ""
    userinfo = "...@" if "@" in parts.netloc else ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{userinfo}{host}{port}{rest}"


def _alerts(where: _Where, value: Any) -> Alerts:
    data = _mapping(where, "alerts", value, (*ALERT_TARGETS, "retry", "timeout", "queue_size"))
    options: dict[str, Any] = {}
    for key in ALERT_TARGETS:
        if data.get(key) is None:
            continue
        target = _mapping(where, f"alerts.{key}", data[key], _TARGET_KEYS[key])
        url = target.get("url")
        # A URL taken whole from the environment ("${SLACK_WEBHOOK_URL}") is checked when
        # the collector expands it (Alerts.expanded); the agent side never needs it.
        if not (isinstance(url, str) and (_is_http_url(url) or _ENV_REF.fullmatch(url))):
            shown = redact_url(url) if isinstance(url, str) else url
            raise where.fail(f"alerts.{key}.url", "an http:// or https:// URL", shown)
        options[f"{key}_url"] = url
        if "headers" in target:
            options[f"{key}_headers"] = _headers(where, f"alerts.{key}.headers", target["headers"])
        if "resolve_after" in target:
            options["resolve_after"] = _seconds(where, f"alerts.{key}.resolve_after", target["resolve_after"])
    if "timeout" in data:
        options["timeout"] = _seconds(where, "alerts.timeout", data["timeout"])
    if "queue_size" in data:
        options["queue_size"] = int(
            parse_number(data["queue_size"], integer=True, where=f"{where.source}: alerts.queue_size")
        )
    if data.get("retry") is not None:
        retry = _mapping(where, "alerts.retry", data["retry"], ("attempts", "initial_backoff", "max_backoff"))
        if "attempts" in retry:
            options["attempts"] = int(
                parse_number(retry["attempts"], integer=True, where=f"{where.source}: alerts.retry.attempts")
            )
        for key in ("initial_backoff", "max_backoff"):
            if key in retry:
                options[key] = _seconds(where, f"alerts.retry.{key}", retry[key])
        initial = options.get("initial_backoff", DEFAULT_INITIAL_BACKOFF)
        longest = options.get("max_backoff", DEFAULT_MAX_BACKOFF)
        if longest < initial:
            if "max_backoff" in retry:
                raise where.fail(
                    "alerts.retry.max_backoff",
                    f"at least initial_backoff ({initial:g} s)",
                    retry["max_backoff"],
                )
            raise where.fail(
                "alerts.retry.initial_backoff",
                f"at most max_backoff ({longest:g} s)",
                retry["initial_backoff"],
            )
    return Alerts(**options)


def parse_policy(data: Any, source: str = "policy") -> PolicyFile:
    """Validate a parsed policy document; ``source`` names it in error messages."""
    where = _Where(source)
    if data is None:
        data = {}
    data = (
        _mapping(where, "", data, ("warn_at", "policies", "alerts", "collector_url"))
        if isinstance(data, Mapping)
        else data
    )
    if not isinstance(data, Mapping):
        raise PolicyError(f"{source}: expected a mapping with warn_at, policies, alerts, got {shown(data)}")
    warn_at = DEFAULT_WARN_AT
    if "warn_at" in data:
        warn_at = float(
            parse_number(data["warn_at"], integer=False, fraction=True, where=f"{source}: warn_at")
        )
    raw_policies = data.get("policies") or []
    if not isinstance(raw_policies, list):
        raise where.fail("policies", "a list of policies", raw_policies)
    seen: set[str] = set()
    policies = tuple(_policy(where, i, p, seen) for i, p in enumerate(raw_policies))
    alerts = _alerts(where, data["alerts"]) if data.get("alerts") is not None else Alerts()
    collector_url = data.get("collector_url")
    if collector_url is not None and (
        not isinstance(collector_url, str)
        or not all(re.match(r"^https?://\S+$", u.strip()) for u in collector_url.split(","))
    ):
        raise where.fail("collector_url", "http(s):// URL(s), comma-separated", collector_url)
    return PolicyFile(
        warn_at=warn_at, policies=policies, alerts=alerts, collector_url=collector_url, source=source
    )


def load_policy_file(path: str | os.PathLike[str]) -> PolicyFile:
    """Read and validate a policy file; raises ``PolicyError`` naming the file."""
    source = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{source}: cannot read the budget policy file: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(f"{source}: not valid YAML{at}: {problem}") from None
    return parse_policy(data, source)


def config_from_env(environ: Mapping[str, str] | None = None) -> BudgetConfig:
    """The budget configuration the environment describes; raises ``PolicyError``."""
    env = os.environ if environ is None else environ
    policy = None
    path = env.get(ENV_BUDGETS, "").strip()
    if path:
        policy = load_policy_file(path)
    limits = {}
    for name, var in ENV_LIMITS.items():
        raw = env.get(var, "").strip()
        if raw:
            limits[name] = parse_number(raw, integer=name in INTEGER_LIMITS, where=var)
    warn_at = None
    raw = env.get(ENV_WARN_AT, "").strip()
    if raw:
        warn_at = float(parse_number(raw, integer=False, fraction=True, where=ENV_WARN_AT))
    on_exceed = env.get(ENV_ON_EXCEED, "").strip() or None
    if on_exceed is not None and on_exceed not in ON_EXCEED_VALUES:
        raise PolicyError(f'{ENV_ON_EXCEED}: expected kill or alert, got "{on_exceed}"')
    return BudgetConfig(
        policy=policy, env_limits=Limits(**limits), env_warn_at=warn_at, env_on_exceed=on_exceed
    )
