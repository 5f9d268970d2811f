"""Entry point for ``python -m otel_llm.sim``."""

import sys

from otel_llm.sim.cli import main

if __name__ == "__main__":
    sys.exit(main())
