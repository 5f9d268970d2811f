"""``make demo`` (``otel-llm demo``) with a real API key but no reachable API stops with
one clear line that says what failed and how to run on the simulator."""

from __future__ import annotations

import socket

from otel_llm import demo


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when this returns: connections are refused


def test_demo_against_an_unreachable_real_api_says_so_in_one_line(monkeypatch, capsys):
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{_refused_port()}")
    assert demo.main() == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1, errors
    (line,) = errors
    expected = "otel-llm demo: anthropic_agent.py: the real Anthropic API failed (APIConnectionError"
    assert line.startswith(expected)
    assert "unset OPENAI_API_KEY and ANTHROPIC_API_KEY" in line
    assert "sk-test" not in line
