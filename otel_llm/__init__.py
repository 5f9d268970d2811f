"""otel-llm: cost and budget observability for LLM agents, on OpenTelemetry."""

__version__ = "0.1.0"
