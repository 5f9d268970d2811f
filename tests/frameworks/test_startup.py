"""Start-up: under ``opentelemetry-instrument`` the instrumentors wrap an SDK when the
program imports it (post-import hooks), so a program that uses none of them imports none
of them; ``bench/startup.py`` measures the time this saves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import agent_env

HEAVY = ("openai", "anthropic", "litellm", "genai_prices")

PROBE = """
import json, sys
before = sorted(m for m in {heavy!r} if m in sys.modules)
{body}
print(json.dumps({{"before": before, **result}}))
"""


def _run(body: str, module_sim) -> dict:
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    code = PROBE.format(heavy=HEAVY, body=body)
    env = agent_env(module_sim, "http://127.0.0.1:9", "startup")
    env["OTEL_TRACES_EXPORTER"] = "none"
    result = subprocess.run(
        [str(instrument), sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_a_program_that_uses_no_sdk_imports_none(module_sim):
    out = _run("result = {}", module_sim)
    assert out["before"] == []


def test_an_sdk_imported_later_is_wrapped_then(module_sim):
    body = """
import openai, anthropic, litellm
from openai.resources.chat.completions.completions import Completions
from anthropic.resources.messages.messages import Messages
result = {
    "openai": hasattr(Completions.create, "__wrapped__"),
    "anthropic": hasattr(Messages.create, "__wrapped__"),
    "litellm": hasattr(litellm.completion, "__wrapped__"),
}
"""
    out = _run(body, module_sim)
    assert out == {"before": [], "openai": True, "anthropic": True, "litellm": True}
