"""The example agents ``otel-llm demo`` runs, shipped with the package (their workspace
files in ``data/`` are package data), so the demo works from an installed wheel too.

Run one yourself, against the provider simulator or, with an API key set, the real API::

    python -m otel_llm.examples.quickstart                 # needs OPENAI_BASE_URL / ANTHROPIC_BASE_URL
    python -m otel_llm.examples.openai_agent
    python -m otel_llm.examples.anthropic_agent
    opentelemetry-instrument python -m otel_llm.examples.openai_agent   # with export, no code change
"""

from pathlib import Path

DIRECTORY = Path(__file__).resolve().parent
"""Where the example scripts are installed."""
QUICKSTART = DIRECTORY / "quickstart.py"
AGENTS = (DIRECTORY / "openai_agent.py", DIRECTORY / "anthropic_agent.py")
