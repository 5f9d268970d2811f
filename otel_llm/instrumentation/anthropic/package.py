"""The instrumented library and the versions this instrumentation supports.

Older 0.x releases lack some surfaces (the SDK's own tracing, ``diagnostics``); a surface
that a version lacks is skipped, the rest are instrumented.
"""

_instruments = ("anthropic >= 0.70, < 3",)
