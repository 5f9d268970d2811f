"""The otel-llm collector sidecar: OTLP in, per-task and per-window budgets, kills,
alerts, ClickHouse out. See ``collector/README.md`` for every option.

Components (after the OpenTelemetry Collector contrib layout): :mod:`.config` (typed
config, every default), :mod:`.otlp` (decoding), :mod:`.receiver` (OTLP/HTTP and
OTLP/gRPC), :mod:`.processor` (the budget processor), :mod:`.exporters` (storage, OTLP
forward), :mod:`.control` (control API), :mod:`.state` (restart recovery),
:mod:`.alerts` and :mod:`.selfmetrics`, wired by :mod:`.service`.
"""
