"""``model_prices``: what each model seen in ``llm_calls`` costs per million tokens.

Queries that compare models by price (``escalations``) need the prices inside
ClickHouse. They come from genai-prices through :func:`otel_llm.pricing.price`, the one
cost function of the project, by pricing a thousand input and a thousand output
tokens of each model (scaled to a million); models it does not know get no row (and are never called an
escalation).
"""

from __future__ import annotations

import datetime as dt

from otel_llm.pricing import price
from otel_llm.storage.backend import Backend
from otel_llm.usage import Usage

__all__ = ["refresh"]

# Priced as 1,000 tokens and scaled: a million tokens in one call would hit the
# long-context tier some models have (above 200k input tokens).
_UNIT = 1000
_SCALE = 1_000_000 // _UNIT
_SEEN = "SELECT DISTINCT toString(provider) AS provider, toString(response_model) AS model FROM llm_calls"
_INSERT = (
    "INSERT INTO model_prices (provider, model, input_usd_per_mtok, output_usd_per_mtok, source, loaded_at) "
    "SELECT r.1, r.2, r.3, r.4, r.5, now64(3) FROM (SELECT arrayJoin(arrayZip({providers:Array(String)}, "
    "{models:Array(String)}, {inputs:Array(Float64)}, {outputs:Array(Float64)}, "
    "{sources:Array(String)})) AS r)"
)


def refresh(backend: Backend) -> int:
    """Price every model seen in ``llm_calls`` into ``model_prices``; the rows written."""
    rows = backend.query(_SEEN).rows
    columns: dict[str, list] = {"providers": [], "models": [], "inputs": [], "outputs": [], "sources": []}
    at = dt.datetime.now(dt.UTC)
    for provider, model in rows:
        if not model:
            continue
        inp = price(Usage(input_tokens=_UNIT), model, provider or None, timestamp=at)
        out = price(Usage(output_tokens=_UNIT), model, provider or None, timestamp=at)
        if inp is None or out is None:
            continue
        columns["providers"].append(provider)
        columns["models"].append(model)
        columns["inputs"].append(round(inp.total_usd * _SCALE, 9))
        columns["outputs"].append(round(out.total_usd * _SCALE, 9))
        columns["sources"].append(out.source)
    if columns["models"]:
        backend.execute(_INSERT, columns)
    return len(columns["models"])
