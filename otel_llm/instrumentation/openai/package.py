"""The OpenAI SDK versions this instrumentation supports (checked by ``BaseInstrumentor``
before instrumenting). Developed and tested against openai 3.57; the wrapped methods and
stream helpers exist unchanged across 2.x and 3.x, and a surface missing from an older
release is skipped, not an error."""

_instruments = ("openai >= 2.0, < 4",)
