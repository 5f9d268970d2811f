"""``otel-llm grafana provision`` through grafana-client against a loopback server that
answers as Grafana's HTTP API does."""

from __future__ import annotations

import socket

import pytest
from support.grafana_http import FakeGrafana

from otel_llm.cli import main
from otel_llm.grafana import alerting
from otel_llm.grafana.dashboards import DASHBOARDS
from otel_llm.grafana.provision import ProvisionError, provision


def test_provision_creates_everything_then_updates_in_place() -> None:
    with FakeGrafana(token="glsa_good") as grafana:
        first = provision(grafana.url, "glsa_good", clickhouse_host="ch.internal", clickhouse_password="pw")
        state = grafana.state
        assert first.actions["datasource"] == [("otel-llm-clickhouse", "created")]
        assert first.actions["folder"] == [("otel-llm", "created")]
        assert sorted(state.dashboards) == sorted(d.uid for d in DASHBOARDS)
        assert all(d["folderUid"] == "otel-llm" and d["version"] == 1 for d in state.dashboards.values())
        assert sorted(state.rules) == sorted(r.uid for r in alerting.RULES)
        assert {r["folderUID"] for r in state.rules.values()} == {"otel-llm"}
        assert state.datasources["otel-llm-clickhouse"]["jsonData"]["host"] == "ch.internal"
        assert state.datasources["otel-llm-clickhouse"]["secureJsonData"] == {"password": "pw"}
        assert list(state.contact_points) == ["otel-llm-alertmanager"]
        assert state.policies["receiver"] == "otel-llm"
        assert "/api/v1/provisioning/alert-rules" in state.provenance_disabled

        second = provision(grafana.url, "glsa_good")
        assert second.actions["datasource"] == [("otel-llm-clickhouse", "updated")]
        assert second.actions["folder"] == [("otel-llm", "kept")]
        assert {a for _, a in second.actions["alert-rule"]} == {"updated"}
        assert second.actions["contact-point"] == [("otel-llm-alertmanager", "updated")]
        assert len(state.dashboards) == len(DASHBOARDS)
        assert {d["version"] for d in state.dashboards.values()} == {2}
        assert len(state.rules) == len(alerting.RULES)
        assert all(status < 400 or status == 404 for _, _, status in state.requests)


def test_a_bad_token_is_a_clear_error_before_anything_changes() -> None:
    with FakeGrafana(token="glsa_good") as grafana:
        with pytest.raises(ProvisionError, match=r"refused the token \(401\): check --token"):
            provision(grafana.url, "glsa_wrong")
        assert grafana.state.dashboards == {}
        assert grafana.state.datasources == {}


def test_an_unreachable_or_malformed_url_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    with pytest.raises(
        ProvisionError, match=rf"cannot reach Grafana at http://127.0.0.1:{port}.*check --url"
    ):
        provision(f"http://127.0.0.1:{port}", "t", timeout=2)
    with pytest.raises(ProvisionError, match="--url must be http"):
        provision("localhost:3000", "t")


def test_cli_prints_what_it_did_and_exits_non_zero_on_error(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeGrafana(token="tok") as grafana:
        assert main(["grafana", "provision", "--url", grafana.url, "--token", "tok"]) == 0
        out = capsys.readouterr().out
        assert "dashboard      otel-llm-cost" in out
        assert main(["grafana", "provision", "--url", grafana.url, "--token", "nope"]) == 1
        assert "refused the token" in capsys.readouterr().err
