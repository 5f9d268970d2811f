"""Auto-instrumentation of the OpenAI and Anthropic SDKs.

``opentelemetry-instrument python agent.py`` loads the instrumentors through the
``opentelemetry_instrumentor`` entry points ``otel_llm_openai`` and
``otel_llm_anthropic``. Each model call becomes one CLIENT span named
``{gen_ai.operation.name} {gen_ai.request.model}`` with tokens, prompt-cache reads and
writes, cost and latency (see ``inference.py``), plus the GenAI client metrics. Every
attribute and metric, with its type and unit: ``docs/telemetry.md``.
"""
