"""The LiteLLM versions this instrumentation supports (checked by ``BaseInstrumentor``
before instrumenting). Developed and tested against litellm 1.110; the wrapped functions
(``litellm.completion`` and friends) and the stream wrapper's ``chunks`` list have kept
their shape across the 1.x line."""

_instruments = ("litellm >= 1.60, < 2",)
