"""The embedded engine closes itself at interpreter exit: the quick start of
``otel_llm.storage`` without ``close()`` exits cleanly (chDB used to crash the process)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from otel_llm.storage import StorageConfig, apply_schema, open_backend
backend = open_backend(StorageConfig.from_mapping({"path": sys.argv[1]}))
apply_schema(backend)
print(backend.query("SELECT count() FROM llm_calls").rows)
"""


def test_a_backend_left_open_does_not_crash_the_interpreter_at_exit(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "clickhouse")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[(0,)]"
