"""The otel-llm collector sidecar: OTLP in, per-task and per-window budgets, kills,
alerts, ClickHouse out."""
