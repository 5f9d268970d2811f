"""Tests for otel_llm.pricing, against the real genai-prices data bundled with the package."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest
from genai_prices import data_snapshot
from genai_prices.types import ModelPrice

from otel_llm import attributes as attrs
from otel_llm import pricing
from otel_llm.pricing import PRICE_SOURCE_OVERRIDE, Cost, load_overrides, price
from otel_llm.usage import Usage

TESTDATA = Path(__file__).parent / "testdata"
GENAI = f"genai-prices {genai_prices.__version__}"
SONNET = "claude-sonnet-4-5-20250929"
WHEN = datetime(2025, 11, 3, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_pricing(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(pricing.ENV_PRICES, raising=False)
    pricing._reset_for_tests()
    yield
    pricing._reset_for_tests()


def _mtok(tokens: int, usd_per_mtok: str) -> float:
    return float(Decimal(tokens) * Decimal(usd_per_mtok) / 1_000_000)


def _pricing_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "otel_llm.pricing" and r.levelno == logging.WARNING]


# -- exact prices from genai-prices ------------------------------------------------


def test_claude_sonnet_4_5_one_hour_cache_write_is_6_usd_per_mtok():
    usage = Usage(input_tokens=2000, cache_creation_input_tokens=2000, cache_creation_1h_input_tokens=2000)
    cost = price(usage, SONNET, "anthropic")
    assert cost == Cost(
        total_usd=0.012,
        input_usd=0.0,
        output_usd=0.0,
        cache_read_usd=0.0,
        cache_write_usd=0.012,
        cache_savings_usd=-0.006,
        source=GENAI,
    )


def test_claude_sonnet_4_5_five_minute_cache_write_is_3_75_usd_per_mtok():
    usage = Usage(input_tokens=2000, cache_creation_input_tokens=2000, cache_creation_5m_input_tokens=2000)
    cost = price(usage, SONNET, "anthropic")
    assert cost is not None
    assert cost.cache_write_usd == 0.0075
    assert cost.total_usd == 0.0075


def test_cache_write_without_ttl_split_is_priced_as_five_minutes():
    usage = Usage(input_tokens=2000, cache_creation_input_tokens=2000)
    cost = price(usage, SONNET, "anthropic")
    assert cost is not None
    assert cost.cache_write_usd == 0.0075


def test_claude_sonnet_4_5_full_call_splits_every_part():
    # 2,000 uncached at $3, 8,000 read at $0.30, 1,500 5m writes at $3.75,
    # 500 1h writes at $6, 700 output (200 of them reasoning) at $15.
    usage = Usage(
        input_tokens=12_000,
        output_tokens=700,
        cache_read_input_tokens=8000,
        cache_creation_input_tokens=2000,
        cache_creation_5m_input_tokens=1500,
        cache_creation_1h_input_tokens=500,
        reasoning_output_tokens=200,
    )
    cost = price(usage, SONNET, "anthropic")
    assert cost == Cost(
        total_usd=0.027525,
        input_usd=0.006,
        output_usd=0.0105,
        cache_read_usd=0.0024,
        cache_write_usd=0.008625,
        cache_savings_usd=0.018975,  # 12,000 x $3 = 0.036 minus 0.017025 paid for input
        source=GENAI,
    )


def test_usage_from_anthropic_response_prices_like_the_api_bills():
    raw = {
        "input_tokens": 1000,
        "output_tokens": 300,
        "cache_read_input_tokens": 50_000,
        "cache_creation_input_tokens": 4000,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 3000},
    }
    cost = price(Usage.from_anthropic(raw), SONNET, "anthropic")
    assert cost is not None
    assert cost.input_usd == _mtok(1000, "3")
    assert cost.cache_read_usd == _mtok(50_000, "0.3")
    assert cost.cache_write_usd == float(Decimal(1000 * 3.75 + 3000 * 6) / 1_000_000)
    assert cost.output_usd == _mtok(300, "15")


def test_gpt_4o_cached_input_is_half_price():
    usage = Usage(input_tokens=10_000, output_tokens=500, cache_read_input_tokens=8000)
    cost = price(usage, "gpt-4o-2024-08-06", "openai")
    assert cost == Cost(
        total_usd=0.02,
        input_usd=0.005,  # 2,000 x $2.50
        output_usd=0.005,  # 500 x $10
        cache_read_usd=0.01,  # 8,000 x $1.25
        cache_write_usd=0.0,
        cache_savings_usd=0.01,
        source=GENAI,
    )


def test_reasoning_tokens_are_priced_once_as_output():
    usage = Usage(input_tokens=1000, output_tokens=5000, reasoning_output_tokens=4000)
    cost = price(usage, "o3", "openai", timestamp=WHEN)
    assert cost is not None
    assert cost.output_usd == _mtok(5000, "8")
    assert cost.total_usd == 0.042  # 1,000 x $2 + 5,000 x $8


def test_a_model_with_its_own_reasoning_price_bills_reasoning_at_that_rate():
    # sonar-deep-research: output $8, reasoning $3, plus no request fee.
    usage = Usage(input_tokens=100, output_tokens=1000, reasoning_output_tokens=600)
    cost = price(usage, "sonar-deep-research", "perplexity")
    assert cost is not None
    assert cost.output_usd == float(Decimal(400 * 8 + 600 * 3) / 1_000_000)


def test_a_per_request_fee_is_part_of_input():
    # sonar: $1 input, $1 output, $12 per thousand requests.
    cost = price(Usage(input_tokens=1000, output_tokens=1000), "sonar", "perplexity")
    assert cost is not None
    assert cost.input_usd == 0.013
    assert cost.cache_savings_usd == 0.0
    assert cost.total_usd == 0.014


def test_tiered_price_applies_above_200k_input_tokens_to_the_whole_call():
    usage = Usage(input_tokens=250_000, output_tokens=1000, cache_read_input_tokens=100_000)
    cost = price(usage, SONNET, "anthropic")
    assert cost is not None
    assert cost.input_usd == _mtok(150_000, "6")
    assert cost.cache_read_usd == _mtok(100_000, "0.6")
    assert cost.output_usd == _mtok(1000, "22.5")


def test_price_depends_on_request_time_where_genai_prices_dates_a_change():
    usage = Usage(input_tokens=1_000_000)
    before = price(usage, "o3", "openai", timestamp=datetime(2025, 6, 1, tzinfo=UTC))
    after = price(usage, "o3", "openai", timestamp=datetime(2025, 6, 11, tzinfo=UTC))
    assert before is not None
    assert after is not None
    assert (before.input_usd, after.input_usd) == (10.0, 2.0)


def test_time_of_day_prices_are_chosen_per_call():
    usage = Usage(input_tokens=1_000_000)
    peak = price(usage, "deepseek-chat", "deepseek", timestamp=datetime(2025, 11, 3, 12, 0, tzinfo=UTC))
    off_peak = price(usage, "deepseek-chat", "deepseek", timestamp=datetime(2025, 11, 3, 20, 0, tzinfo=UTC))
    assert (peak.input_usd, off_peak.input_usd) == (0.27, 0.135)


# -- cache savings and sums --------------------------------------------------------


def test_cache_savings_positive_for_a_read_heavy_call():
    usage = Usage(input_tokens=100_000, cache_read_input_tokens=95_000, output_tokens=100)
    cost = price(usage, SONNET, "anthropic")
    assert cost is not None
    # 95,000 tokens at $3 - $0.30
    assert cost.cache_savings_usd == _mtok(95_000, "2.7")


def test_cache_savings_negative_for_a_write_only_call():
    usage = Usage(
        input_tokens=10_000, cache_creation_input_tokens=10_000, cache_creation_5m_input_tokens=10_000
    )
    cost = price(usage, SONNET, "anthropic")
    assert cost is not None
    assert cost.cache_savings_usd == -_mtok(10_000, "0.75")


def test_no_cache_means_no_savings():
    cost = price(Usage(input_tokens=5000, output_tokens=10), SONNET, "anthropic")
    assert cost is not None
    assert cost.cache_savings_usd == 0.0


@pytest.mark.parametrize(
    ("model", "provider"),
    [(SONNET, "anthropic"), ("gpt-4o-2024-08-06", "openai"), ("gemini-2.5-pro", "gcp.gemini")],
)
def test_parts_sum_to_the_total(model: str, provider: str):
    usage = Usage(
        input_tokens=123_457,
        output_tokens=3333,
        cache_read_input_tokens=77_777,
        cache_creation_input_tokens=11_111,
        cache_creation_5m_input_tokens=10_000,
        cache_creation_1h_input_tokens=1111,
        reasoning_output_tokens=999,
    )
    cost = price(usage, model, provider)
    assert cost is not None
    rates = pricing._resolve(provider, model).rates(None)
    assert rates.pico  # these models' prices are whole pico-dollars per token
    parts = pricing._price_parts(usage, rates)
    assert sum(parts[:4]) / pricing._PICO == cost.total_usd
    floats = cost.input_usd + cost.output_usd + cost.cache_read_usd + cost.cache_write_usd
    assert math.isclose(floats, cost.total_usd, rel_tol=1e-15)


# Calls every priced model is checked with: plain; cache read and reasoning; above the
# 200k tier with 5m and 1h cache writes; exactly at a tier's start (still the base rate:
# a tier applies above its start), with a cache read and with a cache write.
MODEL_CASES = [
    Usage(input_tokens=40, output_tokens=200),
    Usage(input_tokens=9000, output_tokens=900, cache_read_input_tokens=5000, reasoning_output_tokens=300),
    Usage(
        input_tokens=250_000,
        output_tokens=2000,
        cache_read_input_tokens=100_000,
        cache_creation_input_tokens=30_000,
        cache_creation_5m_input_tokens=20_000,
        cache_creation_1h_input_tokens=10_000,
    ),
    Usage(input_tokens=200_000, output_tokens=10, cache_read_input_tokens=1000),
    Usage(input_tokens=200_000, output_tokens=10, cache_creation_input_tokens=7),
]


def _every_priced_model():
    snapshot = data_snapshot.get_snapshot()
    for provider in snapshot.providers:
        if provider.id not in {"anthropic", "openai", "google", "aws", "azure", "perplexity", "deepseek"}:
            continue
        for model in provider.models:
            yield provider.id, model


def test_total_equals_genai_prices_calc_price_for_every_model_of_the_main_providers():
    checked = 0
    for provider_id, model in _every_priced_model():
        for usage in MODEL_CASES:
            genai_usage = genai_prices.Usage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_input_tokens,
                cache_write_tokens=usage.cache_creation_input_tokens,
                cache_write_5m_tokens=usage.cache_creation_5m_input_tokens,
                cache_write_1h_tokens=usage.cache_creation_1h_input_tokens,
                output_reasoning_tokens=usage.reasoning_output_tokens,
            )
            model_price = model.get_prices(WHEN)
            try:
                expected = model_price.calc_price(genai_usage)["total_price"]
            except ValueError:
                continue  # price data genai-prices itself rejects
            ours = pricing._price_parts(usage, pricing._rates_of(model_price))
            assert sum(ours[:4]) == expected, (provider_id, model.id, usage)
            checked += 1
    assert checked > 500


# -- model matching ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "provider", "input_per_mtok"),
    [
        (SONNET, "anthropic", "3"),
        ("claude-sonnet-4-5", "anthropic", "3"),
        ("gpt-4o-2024-08-06", "openai", "2.5"),
        ("gpt-4o-2024-08-06", "azure.ai.openai", "2.5"),
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", "aws.bedrock", "3.3"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws.bedrock", "3.3"),
        ("claude-sonnet-4-5@20250929", "gcp.vertex_ai", "3"),
        ("gemini-2.5-pro", "gcp.gemini", "1.25"),
        ("gpt-4o-2024-08-06", None, "2.5"),
        ("deepseek-chat", "openai", "0.27"),  # OpenAI-compatible endpoint: matched by model name
        ("GPT-4O-2024-08-06", "OpenAI", "2.5"),
    ],
)
def test_models_match_as_the_apis_name_them(model: str, provider: str | None, input_per_mtok: str):
    # 100K tokens: below the 200K tier of the models that have one.
    cost = price(Usage(input_tokens=100_000), model, provider, timestamp=WHEN)
    assert cost is not None
    assert cost.input_usd == _mtok(100_000, input_per_mtok)


def test_a_repeated_call_does_not_search_the_price_data_again(monkeypatch: pytest.MonkeyPatch):
    calls = []
    original = data_snapshot.DataSnapshot.find_provider_model

    def counting(self, *args, **kwargs):
        calls.append(args[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(data_snapshot.DataSnapshot, "find_provider_model", counting)
    for _ in range(100):
        assert price(Usage(input_tokens=10), SONNET, "anthropic") is not None
        assert price(Usage(input_tokens=10), "no-such-model", "anthropic") is None
    assert calls == [SONNET, "no-such-model", "no-such-model"]  # unknown: provider, then model alone


def test_a_replaced_genai_prices_snapshot_is_used(monkeypatch: pytest.MonkeyPatch):
    assert price(Usage(input_tokens=100_000), SONNET, "anthropic").input_usd == 0.3
    bundled = data_snapshot.get_snapshot()
    _, sonnet = bundled.find_provider_model(SONNET, None, "anthropic", None)
    cheap = type(sonnet)(id=sonnet.id, match=sonnet.match, prices=ModelPrice(input_mtok=Decimal(1)))
    anthropic = type(bundled.providers[0])(id="anthropic", name="Anthropic", api_pattern="", models=[cheap])
    data_snapshot.set_custom_snapshot(
        data_snapshot.DataSnapshot(providers=[anthropic], from_auto_update=True)
    )
    try:
        assert price(Usage(input_tokens=100_000), SONNET, "anthropic").input_usd == 0.1
    finally:
        data_snapshot.set_custom_snapshot(None)
    assert price(Usage(input_tokens=100_000), SONNET, "anthropic").input_usd == 0.3


# -- unknown models and failures ---------------------------------------------------


def test_unknown_model_is_none_with_exactly_one_warning(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, logger="otel_llm.pricing")
    for _ in range(5):
        assert price(Usage(input_tokens=10, output_tokens=10), "my-private-model", "openai") is None
    warnings = _pricing_warnings(caplog)
    assert len(warnings) == 1
    assert "'my-private-model'" in warnings[0].getMessage()
    assert "OTEL_LLM_PRICES" in warnings[0].getMessage()


def test_each_unknown_provider_model_pair_warns_once(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, logger="otel_llm.pricing")
    for _ in range(3):
        price(Usage(input_tokens=1), "x-model", "openai")
        price(Usage(input_tokens=1), "x-model", "anthropic")
        price(Usage(input_tokens=1), None, "openai")
    assert len(_pricing_warnings(caplog)) == 3


def test_a_failure_inside_genai_prices_is_logged_once_and_gives_none(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    def broken(self, *args, **kwargs):
        raise RuntimeError("corrupt price data")

    monkeypatch.setattr(data_snapshot.DataSnapshot, "find_provider_model", broken)
    caplog.set_level(logging.WARNING, logger="otel_llm.pricing")
    for _ in range(3):
        assert price(Usage(input_tokens=10), SONNET, "anthropic") is None
    warnings = _pricing_warnings(caplog)
    assert len(warnings) == 1
    assert warnings[0].exc_info is not None


def test_a_failure_while_computing_is_logged_once_and_gives_none(caplog: pytest.LogCaptureFixture):
    class Broken:
        """A price in genai-prices' data that arithmetic fails on."""

        def __mul__(self, other: object) -> object:
            raise ArithmeticError("boom")

    bundled = data_snapshot.get_snapshot()
    _, sonnet = bundled.find_provider_model(SONNET, None, "anthropic", None)
    broken = type(sonnet)(id=sonnet.id, match=sonnet.match, prices=ModelPrice(input_mtok=Broken()))  # type: ignore[arg-type]
    anthropic = type(bundled.providers[0])(id="anthropic", name="Anthropic", api_pattern="", models=[broken])
    caplog.set_level(logging.WARNING, logger="otel_llm.pricing")
    data_snapshot.set_custom_snapshot(
        data_snapshot.DataSnapshot(providers=[anthropic], from_auto_update=True)
    )
    try:
        for _ in range(3):
            assert price(Usage(input_tokens=10), SONNET, "anthropic") is None
    finally:
        data_snapshot.set_custom_snapshot(None)
    assert len(_pricing_warnings(caplog)) == 1
    assert price(Usage(input_tokens=10), SONNET, "anthropic") is not None  # the bundled data again


def test_inconsistent_usage_is_priced_without_raising():
    # More cache reads than input tokens: the uncached part is clamped at zero.
    cost = price(Usage(input_tokens=10, cache_read_input_tokens=1000), SONNET, "anthropic")
    assert cost is not None
    assert (cost.input_usd, cost.cache_read_usd) == (0.0, _mtok(1000, "0.3"))


# -- span attributes ---------------------------------------------------------------


def test_span_attributes_use_the_contract_names():
    cost = price(
        Usage(input_tokens=10_000, output_tokens=500, cache_read_input_tokens=8000), "gpt-4o", "openai"
    )
    assert cost is not None
    assert cost.span_attributes() == {
        attrs.COST_USD: 0.02,
        attrs.COST_INPUT_USD: 0.005,
        attrs.COST_OUTPUT_USD: 0.005,
        attrs.COST_CACHE_READ_USD: 0.01,
        attrs.COST_CACHE_WRITE_USD: 0.0,
        attrs.COST_CACHE_SAVINGS_USD: 0.01,
        attrs.PRICE_SOURCE: GENAI,
    }
    assert attrs.PRICE_SOURCE == "otel_llm.price.source"
    assert pricing.PRICE_SOURCE_UNKNOWN == "unknown"


# -- overrides ---------------------------------------------------------------------


def test_override_file_prices_a_fine_tuned_model_by_glob():
    load_overrides(TESTDATA / "prices.yaml")
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cache_read_input_tokens=400_000)
    cost = price(usage, "ft:gpt-4o-mini-2024-07-18:acme:support:9a8b7c", "openai")
    assert cost == Cost(
        total_usd=1.44,
        input_usd=0.18,
        output_usd=1.2,
        cache_read_usd=0.06,
        cache_write_usd=0.0,
        cache_savings_usd=0.06,
        source=PRICE_SOURCE_OVERRIDE,
    )


def test_override_with_a_provider_applies_only_to_that_provider(caplog: pytest.LogCaptureFixture):
    load_overrides(TESTDATA / "prices.yaml")
    assert price(Usage(input_tokens=10), "ft:gpt-4o-mini-2024-07-18:acme:x", "anthropic") is None
    azure = price(Usage(input_tokens=1_000_000), "gpt-4o-2024-08-06", "azure.ai.openai")
    openai = price(Usage(input_tokens=1_000_000), "gpt-4o-2024-08-06", "openai")
    assert (azure.input_usd, azure.source) == (2.75, PRICE_SOURCE_OVERRIDE)
    assert (openai.input_usd, openai.source) == (2.5, GENAI)


def test_override_exact_name_wins_over_an_earlier_glob():
    load_overrides(TESTDATA / "prices.yaml")
    assert price(Usage(input_tokens=1_000_000), "acme-llm-large").input_usd == 4.0
    assert price(Usage(input_tokens=1_000_000), "ACME-LLM-small").input_usd == 1.0


def test_override_cache_write_prices_by_ttl():
    load_overrides(TESTDATA / "prices.yaml")
    usage = Usage(
        input_tokens=4_000_000,
        cache_read_input_tokens=1_000_000,
        cache_creation_input_tokens=2_000_000,
        cache_creation_5m_input_tokens=1_000_000,
        cache_creation_1h_input_tokens=1_000_000,
    )
    cost = price(usage, "acme-llm-large", "whatever")
    assert (cost.input_usd, cost.cache_read_usd, cost.cache_write_usd) == (4.0, 0.4, 13.0)
    assert cost.cache_savings_usd == -1.4  # 4M x $4 = 16, paid 4 + 0.4 + 13


def test_override_without_cache_prices_bills_cache_tokens_at_the_input_rate():
    load_overrides(TESTDATA / "prices.yaml")
    usage = Usage(
        input_tokens=3_000_000, cache_read_input_tokens=1_000_000, cache_creation_input_tokens=1_000_000
    )
    cost = price(usage, "acme-llm-mini")
    assert (cost.input_usd, cost.cache_read_usd, cost.cache_write_usd) == (3.0, 0.0, 0.0)
    assert cost.cache_savings_usd == 0.0


def test_override_wins_over_genai_prices_and_json_files_work(tmp_path: Path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": [{"model": "claude-sonnet-4-5*", "input": 1, "output": 2}]}))
    assert price(Usage(input_tokens=1_000_000), SONNET, "anthropic").source == GENAI
    load_overrides(path)
    cost = price(Usage(input_tokens=1_000_000), SONNET, "anthropic")
    assert (cost.input_usd, cost.source) == (1.0, PRICE_SOURCE_OVERRIDE)


def test_overrides_from_the_environment_are_read_once_at_first_use(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OTEL_LLM_PRICES", str(TESTDATA / "prices.yaml"))
    assert price(Usage(input_tokens=1_000_000), "acme-llm-large").input_usd == 4.0
    monkeypatch.setenv("OTEL_LLM_PRICES", "/nonexistent/prices.yaml")
    assert price(Usage(input_tokens=1_000_000), "acme-llm-large").input_usd == 4.0


def test_a_bad_file_in_the_environment_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
):
    path = tmp_path / "prices.yaml"
    path.write_text("models:\n  - {model: m, input: abc, output: 1}\n")
    monkeypatch.setenv("OTEL_LLM_PRICES", str(path))
    caplog.set_level(logging.ERROR, logger="otel_llm.pricing")
    assert price(Usage(input_tokens=100_000), SONNET, "anthropic").input_usd == 0.3
    price(Usage(input_tokens=1), SONNET, "anthropic")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "models[0].input: expected a number >= 0" in errors[0].getMessage()


def test_load_overrides_replaces_earlier_overrides(tmp_path: Path):
    load_overrides(TESTDATA / "prices.yaml")
    assert price(Usage(input_tokens=1), "acme-llm-large") is not None  # priced by the first file
    path = tmp_path / "other.yaml"
    path.write_text("models: []\n")
    load_overrides(path)
    assert price(Usage(input_tokens=1), "acme-llm-large") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "models:\n  - {model: a, input: 1, output: 1}\n  - {model: b, input: 1, output: 1}\n"
            "  - {model: c, input: abc, output: 1}\n",
            "prices.yaml: models[2].input: expected a number >= 0 (USD per million tokens), got 'abc'",
        ),
        (
            "models:\n  - {model: a, input: -1, output: 1}\n",
            "prices.yaml: models[0].input: expected a number >= 0 (USD per million tokens), got -1",
        ),
        (
            "models:\n  - {model: a, input: 1, output: true}\n",
            "prices.yaml: models[0].output: expected a number >= 0 (USD per million tokens), got True",
        ),
        (
            "models:\n  - {model: a, input: .nan, output: 1}\n",
            "prices.yaml: models[0].input: expected a number >= 0 (USD per million tokens), got nan",
        ),
        (
            "models:\n  - {model: a, input: 1}\n",
            "prices.yaml: models[0]: expected a 'output' key, got {'model': 'a', 'input': 1}",
        ),
        (
            "models:\n  - {model: a, input: 1, output: 1, cache_reads: 0.1}\n",
            "prices.yaml: models[0].cache_reads: expected no such key (known keys: model, provider, input, "
            "output, cache_read, cache_write, cache_write_1h), got 'cache_reads'",
        ),
        (
            "models:\n  - {model: '', input: 1, output: 1}\n",
            "prices.yaml: models[0].model: expected a model name or glob, got ''",
        ),
        (
            "models:\n  - {model: a, provider: 3, input: 1, output: 1}\n",
            "prices.yaml: models[0].provider: expected a gen_ai.provider.name such as 'openai', got 3",
        ),
        (
            "models:\n  - just-a-name\n",
            "prices.yaml: models[0]: expected a mapping with model, input, output, got 'just-a-name'",
        ),
        (
            "models: {model: a, input: 1, output: 1}\n",
            "prices.yaml: models: expected a list of model prices, "
            "got {'model': 'a', 'input': 1, 'output': 1}",
        ),
        (
            "- {model: a, input: 1, output: 1}\n",
            "prices.yaml: top level: expected a mapping with a 'models' list, "
            "got [{'model': 'a', 'input': 1, 'output': 1}]",
        ),
        ("", "prices.yaml: top level: expected a mapping with a 'models' list, got None"),
        (
            "models: []\nmodel: a\n",
            "prices.yaml: top level: expected only the key 'models', got 'model'",
        ),
    ],
)
def test_a_bad_override_file_raises_a_clear_value_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
):
    monkeypatch.chdir(tmp_path)
    Path("prices.yaml").write_text(text)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        load_overrides("prices.yaml")


def test_invalid_yaml_json_and_missing_files_raise_value_error_naming_the_file(tmp_path: Path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("models: [\n")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{'models': []}")
    for path, start in [
        (bad_yaml, f"{bad_yaml}: not valid YAML: "),
        (bad_json, f"{bad_json}: not valid JSON: "),
        (tmp_path / "missing.yaml", f"{tmp_path / 'missing.yaml'}: cannot read price overrides: "),
    ]:
        with pytest.raises(ValueError, match=f"^{re.escape(start)}"):
            load_overrides(path)


def test_a_bad_override_file_keeps_the_overrides_loaded_before(tmp_path: Path):
    load_overrides(TESTDATA / "prices.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: 3\n")
    with pytest.raises(ValueError, match="expected a list"):
        load_overrides(bad)
    assert price(Usage(input_tokens=1_000_000), "acme-llm-large").input_usd == 4.0


def test_usage_sum_adds_every_field() -> None:
    names = [f.name for f in dataclasses.fields(Usage)]
    left = Usage(*range(1, len(names) + 1))
    right = Usage(*range(100, 100 + len(names)))
    total = left + right
    assert [getattr(total, n) for n in names] == [getattr(left, n) + getattr(right, n) for n in names]


def test_cost_attributes_leave_out_cache_parts_only_when_the_cache_was_not_touched() -> None:
    plain = price(Usage(input_tokens=1_000, output_tokens=100), "gpt-4o", "openai")
    assert plain is not None
    assert set(plain.span_attributes()) == {
        attrs.COST_USD,
        attrs.COST_INPUT_USD,
        attrs.COST_OUTPUT_USD,
        attrs.PRICE_SOURCE,
    }
    cached = price(
        Usage(input_tokens=2_048, output_tokens=100, cache_read_input_tokens=1_024), "gpt-4o", "openai"
    )
    assert cached is not None
    assert cached.span_attributes()[attrs.COST_CACHE_READ_USD] == _mtok(1_024, "1.25")
    assert cached.span_attributes()[attrs.COST_CACHE_WRITE_USD] == 0.0
    assert cached.span_attributes()[attrs.COST_CACHE_SAVINGS_USD] == _mtok(1_024, "1.25")


def test_pico_dollar_arithmetic_gives_the_floats_of_the_exact_decimal_parts_for_every_model() -> None:
    """The fast path (integers of pico-dollars) and the Decimal path give the same floats,
    bit for bit, for every priced model of the main providers, cache and tiers included."""
    models = 0
    for _, model in _every_priced_model():
        decimal_rates = pricing._rates_of(model.get_prices(WHEN))
        rates = pricing._in_pico(decimal_rates)
        assert rates.pico, model.id  # every price in the bundled data is whole pico-dollars
        models += 1
        for usage in MODEL_CASES:
            exact = pricing._price_parts(usage, decimal_rates)
            pico = pricing._price_parts(usage, rates)
            assert [n / pricing._PICO for n in pico] == [float(d) for d in exact], (model.id, usage)
            assert sum(pico[:4]) / pricing._PICO == float(sum(exact[:4])), (model.id, usage)
    assert models > 300


def test_a_price_finer_than_a_pico_dollar_a_token_is_priced_in_decimal() -> None:
    rates = pricing._Rates(input=Decimal("0.0000001"), output=Decimal("1"))  # 0.1 pico-dollar a token
    assert not pricing._in_pico(rates).pico
    usage = Usage(input_tokens=10**7, output_tokens=1)
    assert pricing._price_parts(usage, rates)[:2] == (Decimal("0.000001"), Decimal("0.000001"))


def test_costs_add_up_field_by_field_and_keep_a_common_source():
    one = price(Usage(input_tokens=1000, output_tokens=100, cache_read_input_tokens=500), "gpt-4o", "openai")
    two = price(Usage(input_tokens=3000, output_tokens=7), "gpt-4o", "openai")
    assert one is not None
    assert two is not None
    total = one + two
    assert total == Cost(
        total_usd=one.total_usd + two.total_usd,
        input_usd=one.input_usd + two.input_usd,
        output_usd=one.output_usd + two.output_usd,
        cache_read_usd=one.cache_read_usd + two.cache_read_usd,
        cache_write_usd=one.cache_write_usd + two.cache_write_usd,
        cache_savings_usd=one.cache_savings_usd + two.cache_savings_usd,
        source=one.source,
    )
    assert sum([one, two], Cost()) == total  # Cost() is the zero: no parts, no source
    mixed = one + Cost(total_usd=1.0, source=PRICE_SOURCE_OVERRIDE)
    assert (mixed.total_usd, mixed.source) == (one.total_usd + 1.0, "")
