"""Price one model call: a :class:`~otel_llm.usage.Usage` in, a :class:`Cost` out.

Prices come from `genai-prices <https://github.com/pydantic/genai-prices>`_ (the data
bundled with the installed version), or from an override file for private and fine-tuned
models. ``price()`` never raises: a model it cannot price gives ``None`` and one WARNING
on the ``otel_llm.pricing`` logger per (provider, model).

Conventions
-----------
- ``Usage.input_tokens`` counts all input, cache reads and writes included (genai-prices
  counts it the same way), so the uncached part is ``input - cache_read - cache_write``.
  Where a model has no separate cache-read or cache-write price, those tokens are billed
  at the input rate and land in ``input_usd``, as genai-prices does.
- Cache writes: the 1-hour ones are billed at the model's 1-hour write price when it has
  one, the rest (5-minute, or TTL not reported) at its plain cache-write price.
- Reasoning tokens are already inside ``output_tokens``; they are billed at the output
  rate unless the model has its own reasoning price (then at that rate, once).
- Tiered prices (e.g. above 200K input tokens) pick the tier from *all* input tokens of
  the call, cache included, and apply it to every token of the call (genai-prices' rule).
- A flat per-request fee, where a model has one (Perplexity Sonar), is part of
  ``input_usd``.
- Parts are computed exactly and converted to float at the end: in integers of
  pico-dollars (1e-12 USD) when every price of the model is a whole number of them (all
  bundled prices are), else in ``Decimal``; both give the same floats. The total is the
  exact sum of the parts, so float parts match it to the last bit or two.
- ``cache_savings_usd`` = all input tokens at the plain input rate, minus what the input
  actually cost (uncached + cache reads + cache writes). Negative when the write premium
  was not earned back on this call.

Provider and model names
------------------------
``provider`` is a ``gen_ai.provider.name`` value (``openai``, ``anthropic``,
``azure.ai.openai``, ``aws.bedrock``, ``gcp.vertex_ai``, ...), mapped to the genai-prices
provider id; other names are passed through. A model the provider does not list (or no
provider at all) is matched by model name alone, so an OpenAI-compatible endpoint serving
``deepseek-chat`` still gets DeepSeek's price. Model names are matched as the APIs return
them (``claude-sonnet-4-5-20250929``, ``gpt-4o-2024-08-06``, Bedrock and Vertex ids).

Caching and time
----------------
The model lookup is cached per (provider, model) for the life of the process (an LRU of
2048 entries; it is cleared when the genai-prices snapshot is replaced, e.g. by its
``UpdatePrices`` auto-update, or when overrides are loaded). The *price* is still chosen
per call from the request time (``timestamp``, default now), because genai-prices dates
some price changes; that choice is a few comparisons, not a search.

Overrides
---------
``load_overrides(path)`` or the ``OTEL_LLM_PRICES=path`` environment variable (read once,
at the first ``price()`` call, unless ``load_overrides`` was called first) loads a YAML
or JSON file; overrides win over genai-prices. Prices are USD per million tokens::

    models:
      - model: ft:gpt-4o-mini-2024-07-18:acme:*   # exact name or glob (case-insensitive)
        provider: openai                           # optional: only for this provider
        input: 0.30
        output: 1.20
        cache_read: 0.15        # optional; default: billed at the input rate
        cache_write: 0.30       # optional, 5-minute writes; default: the input rate
        cache_write_1h: 0.60    # optional; default: the cache_write rate

Exact names are tried before globs, each in file order. A bad file raises ``ValueError``
naming the file, the key and what was expected; a bad file named by the environment
variable is logged as an ERROR once and ignored.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import json
import logging
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from otel_llm import attributes as attrs
from otel_llm import failures
from otel_llm.usage import Usage

__all__ = ["PRICE_SOURCE_OVERRIDE", "PRICE_SOURCE_UNKNOWN", "Cost", "load_overrides", "price"]

logger = logging.getLogger("otel_llm.pricing")

PRICE_SOURCE_UNKNOWN = "unknown"
PRICE_SOURCE_OVERRIDE = "override"

# genai-prices (with the HTTP client and the pydantic models it imports) loads with the
# first price asked for, not with otel-llm: a program under opentelemetry-instrument that
# never calls a model does not pay its import (bench/startup.py).
data_snapshot: Any = None
ModelInfo: Any = None
ModelPrice: Any = None
TieredPrices: Any = None
calc_unit_price: Any = None
_GENAI_PRICES_SOURCE = "genai-prices"


def _load_genai_prices() -> None:
    global data_snapshot, ModelInfo, ModelPrice, TieredPrices, calc_unit_price, _GENAI_PRICES_SOURCE
    import genai_prices
    from genai_prices import data_snapshot as snapshots
    from genai_prices import types

    ModelInfo, ModelPrice, TieredPrices = types.ModelInfo, types.ModelPrice, types.TieredPrices
    calc_unit_price = types.calc_unit_price
    _GENAI_PRICES_SOURCE = f"genai-prices {genai_prices.__version__}"
    data_snapshot = snapshots  # last: the loaded check reads it


ENV_PRICES = "OTEL_LLM_PRICES"

_MTOK = 1_000_000
_ZERO = 0  # a neutral zero for both Decimal and pico-dollar sums

# gen_ai.provider.name -> genai-prices provider id. Names not listed are passed through.
_PROVIDER_IDS: Mapping[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "azure.ai.openai": "azure",
    "az.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.inference": "azure",
    "aws.bedrock": "aws",
    "gcp.vertex_ai": "google",
    "gcp.gemini": "google",
    "gcp.gen_ai": "google",
    "vertex_ai": "google",
    "gemini": "google",
    "x_ai": "x-ai",
    "mistral_ai": "mistral",
    "deepseek": "deepseek",
    "groq": "groq",
    "cohere": "cohere",
    "perplexity": "perplexity",
}

_LRU_SIZE = 2048


@dataclass(frozen=True, slots=True)
class Cost:
    """The price of one model call in USD, split by what was billed. Costs add up
    (``a + b``, ``sum(costs, Cost())``): a task's cost is the sum of its calls'."""

    total_usd: float = 0.0
    input_usd: float = 0.0
    """Uncached input (plus a per-request fee, where the model has one)."""
    output_usd: float = 0.0
    """Output, reasoning included."""
    cache_read_usd: float = 0.0
    cache_write_usd: float = 0.0
    cache_savings_usd: float = 0.0
    """All input at the plain input rate minus input + cache read + cache write cost."""
    source: str = ""
    """``genai-prices X.Y.Z`` or ``override``; on a sum, the common source, else ``""``."""

    def __add__(self, other: Cost) -> Cost:
        if not isinstance(other, Cost):
            return NotImplemented
        # A sum of one source's costs keeps it (Cost() has none and takes the other's); a
        # mixed sum has none.
        if not self.source or not other.source or self.source == other.source:
            source = self.source or other.source
        else:
            source = ""
        return _cost_of(
            self.total_usd + other.total_usd,
            self.input_usd + other.input_usd,
            self.output_usd + other.output_usd,
            self.cache_read_usd + other.cache_read_usd,
            self.cache_write_usd + other.cache_write_usd,
            self.cache_savings_usd + other.cache_savings_usd,
            source,
        )

    def span_attributes(self, into: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``otel_llm.cost.*`` and ``otel_llm.price.source`` span attributes.

        The three cache parts are left out when all are zero (a call that neither read
        nor wrote the cache): they say nothing the token counts do not, and every span
        attribute costs the SDK on every call. Readers take a missing part as 0. Added to
        ``into`` when given (the call's one attribute dict), else to a new dict."""
        out: dict[str, Any] = {} if into is None else into
        out[attrs.COST_USD] = self.total_usd
        out[attrs.COST_INPUT_USD] = self.input_usd
        out[attrs.COST_OUTPUT_USD] = self.output_usd
        out[attrs.PRICE_SOURCE] = self.source
        if self.cache_read_usd or self.cache_write_usd or self.cache_savings_usd:
            out[attrs.COST_CACHE_READ_USD] = self.cache_read_usd
            out[attrs.COST_CACHE_WRITE_USD] = self.cache_write_usd
            out[attrs.COST_CACHE_SAVINGS_USD] = self.cache_savings_usd
        return out


# Built on every call (its price, its task's new total): each slot is set through its
# descriptor, about three times faster than the frozen dataclass's own ``__init__``
# (``object.__setattr__`` per field); see ``otel_llm.usage._usage``.
_new = object.__new__
(
    _set_total,
    _set_input,
    _set_output,
    _set_read,
    _set_write,
    _set_savings,
    _set_source,
) = (Cost.__dict__[f.name].__set__ for f in dataclasses.fields(Cost))


def _cost_of(
    total_usd: float,
    input_usd: float,
    output_usd: float,
    cache_read_usd: float,
    cache_write_usd: float,
    cache_savings_usd: float,
    source: str,
) -> Cost:
    """``Cost(...)`` with every field given, in field order."""
    cost = _new(Cost)
    _set_total(cost, total_usd)
    _set_input(cost, input_usd)
    _set_output(cost, output_usd)
    _set_read(cost, cache_read_usd)
    _set_write(cost, cache_write_usd)
    _set_savings(cost, cache_savings_usd)
    _set_source(cost, source)
    return cost


@dataclass(frozen=True, slots=True)
class _PicoTiers:
    """A tiered price in pico-dollars per token: ``base`` up to the first tier."""

    base: int
    tiers: tuple[tuple[int, int], ...]
    """(start, price) pairs, highest start first."""


_Rate = Decimal | TieredPrices | int | _PicoTiers | None


@dataclass(frozen=True, slots=True)
class _Rates:
    """Prices of one model at one time, USD per million tokens.

    ``None`` means "no separate price": those tokens are billed at the parent rate
    (cache at the input rate, 1-hour writes at the cache-write rate, reasoning at the
    output rate), which is how genai-prices splits usage over the units a model prices.
    """

    input: _Rate
    output: _Rate
    cache_read: _Rate = None
    cache_write: _Rate = None
    cache_write_5m: _Rate = None
    cache_write_1h: _Rate = None
    output_reasoning: _Rate = None
    requests_per_k: _Rate = None
    pico: bool = False
    """True when every rate is an ``int`` (or ``_PicoTiers``) of pico-dollars (1e-12 USD)
    per token, per request for ``requests_per_k``: see :func:`_in_pico`."""
    flat: _Rates | None = None
    """Tiered pico rates only: the same rates with every tier at its base price, which
    price a call of at most ``flat_up_to`` input tokens (below every tier's start)."""
    flat_up_to: int = 0
    plain: bool = False
    """Pico rates whose input and output are flat ints and that charge no per-request
    fee: a call without cache or reasoning tokens is then two products."""


# Exact integer arithmetic. Prices are decimals with few digits: in pico-dollars per token
# nearly all are whole numbers, and then a call's parts are exact integers and each float
# is one correctly rounded int / int division, the same float the Decimal path gives.
# It spares every call several Decimal operations and Decimal -> float conversions (each a
# round trip through a string), which cost more than the rest of the pricing together.
_PICO = 10**12


def _pico_of(rate: _Rate, units_per_dollar_rate: int) -> int | _PicoTiers | None:
    """``rate`` (USD per ``units_per_dollar_rate`` units) in pico-dollars per unit; raises
    ``ValueError`` when that is not a whole number."""
    if rate is None:
        return None
    if isinstance(rate, TieredPrices):
        tiers = tuple((int(t.start), _whole(t.price, units_per_dollar_rate)) for t in reversed(rate.tiers))
        return _PicoTiers(_whole(rate.base, units_per_dollar_rate), tiers)
    if isinstance(rate, Decimal):
        return _whole(rate, units_per_dollar_rate)
    raise ValueError(f"unsupported price: {rate!r}")


def _whole(rate: Decimal, units_per_dollar_rate: int) -> int:
    scaled = rate * _PICO / units_per_dollar_rate
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{rate} is not a whole number of pico-dollars")
    return int(scaled)


def _in_pico(rates: _Rates) -> _Rates:
    """``rates`` in pico-dollars when every rate allows it, else ``rates`` as they are.
    Tiered pico rates come with their flat twin (:attr:`_Rates.flat`)."""
    try:
        pico = _Rates(
            input=_pico_of(rates.input, _MTOK),
            output=_pico_of(rates.output, _MTOK),
            cache_read=_pico_of(rates.cache_read, _MTOK),
            cache_write=_pico_of(rates.cache_write, _MTOK),
            cache_write_5m=_pico_of(rates.cache_write_5m, _MTOK),
            cache_write_1h=_pico_of(rates.cache_write_1h, _MTOK),
            output_reasoning=_pico_of(rates.output_reasoning, _MTOK),
            requests_per_k=_pico_of(rates.requests_per_k, 1000),
            pico=True,
        )
    except (ValueError, ArithmeticError):
        return rates
    pico = dataclasses.replace(pico, plain=_plain(pico))
    starts = [start for rate in _rate_values(pico) if type(rate) is _PicoTiers for start, _ in rate.tiers]
    if not starts:
        return pico
    # Most calls stay below the first tier (200k input tokens for Claude): priced by
    # the base rates, every part an int product, with no tier walk per part.
    flat = _Rates(*(r.base if type(r) is _PicoTiers else r for r in _rate_values(pico)), pico=True)  # type: ignore[arg-type]
    flat = dataclasses.replace(flat, plain=_plain(flat))
    return dataclasses.replace(pico, flat=flat, flat_up_to=min(starts))


def _plain(rates: _Rates) -> bool:
    return type(rates.input) is int and type(rates.output) is int and rates.requests_per_k is None


def _rate_values(rates: _Rates) -> tuple[_Rate, ...]:
    """The eight rates of ``rates``, in field order."""
    return (
        rates.input,
        rates.output,
        rates.cache_read,
        rates.cache_write,
        rates.cache_write_5m,
        rates.cache_write_1h,
        rates.output_reasoning,
        rates.requests_per_k,
    )


def _rates_of(model_price: ModelPrice) -> _Rates:
    get = model_price.__dict__.get
    return _Rates(
        input=get("input_mtok"),
        output=get("output_mtok"),
        cache_read=get("cache_read_mtok"),
        cache_write=get("cache_write_mtok"),
        cache_write_5m=get("cache_write_5m_mtok"),
        cache_write_1h=get("cache_write_1h_mtok"),
        output_reasoning=get("output_reasoning_mtok"),
        requests_per_k=get("requests_kcount"),
    )


class _Resolved:
    """A matched price source for one (provider, model)."""

    __slots__ = ("_by_price", "_model", "fixed", "source")

    def __init__(self, source: str, *, rates: _Rates | None = None, model: ModelInfo | None = None) -> None:
        self.source = source
        self._model = model
        self._by_price: dict[int, tuple[ModelPrice, _Rates]] = {}
        if rates is None and model is not None and isinstance(model.prices, ModelPrice):
            rates = _rates_of(model.prices)
        self.fixed = None if rates is None else _in_pico(rates)
        """The rates when they do not change with time (read first: no call)."""

    def rates(self, timestamp: datetime | None) -> _Rates:
        if self.fixed is not None:
            return self.fixed
        assert self._model is not None
        model_price = self._model.get_prices(timestamp or datetime.now(tz=UTC))
        # The snapshot's ModelPrice objects live as long as the snapshot (and so this
        # entry); the tuple keeps the object alive so its id stays unique.
        hit = self._by_price.get(id(model_price))
        if hit is None:
            hit = self._by_price[id(model_price)] = (model_price, _in_pico(_rates_of(model_price)))
        return hit[1]


# -- the price ---------------------------------------------------------------------


def price(
    usage: Usage, model: str | None, provider: str | None = None, *, timestamp: datetime | None = None
) -> Cost | None:
    """The cost of one call, or ``None`` when the model has no known price.

    ``provider`` is the ``gen_ai.provider.name`` value; ``timestamp`` the request time
    (default: now), which picks the price where genai-prices dates a price change.
    Never raises: an unknown model, or a failure inside the price data, is logged once
    per (provider, model) and gives ``None``.
    """
    if data_snapshot is None:
        _load_genai_prices()
    if not _state.env_checked:
        _load_env_overrides()
    snapshot = data_snapshot.get_snapshot()
    if snapshot is not _state.snapshot:
        _state.snapshot = snapshot
        _resolve.cache_clear()
    if not model:
        _warn_once(provider, model, "no model name")
        return None
    resolved = _resolve(provider, model)
    if resolved is None:
        return None
    try:
        rates = resolved.fixed or resolved.rates(timestamp)
        if rates.flat is not None and usage.input_tokens <= rates.flat_up_to:
            rates = rates.flat
        if (
            rates.plain
            and usage.input_tokens >= 0
            and usage.output_tokens >= 0
            and not (
                usage.cache_read_input_tokens
                or usage.cache_creation_input_tokens
                or usage.reasoning_output_tokens
            )
        ):
            # Flat per-token prices, a call with no cache or reasoning tokens (most calls):
            # two exact integer products, the same floats as the general path below.
            input_pico = rates.input * usage.input_tokens  # type: ignore[operator]
            output_pico = rates.output * usage.output_tokens  # type: ignore[operator]
            return _cost_of(
                (input_pico + output_pico) / _PICO,
                input_pico / _PICO,
                output_pico / _PICO,
                0.0,
                0.0,
                0.0,
                resolved.source,
            )
        parts = _price_parts(usage, rates)
    except Exception:
        _warn_once(provider, model, "pricing failed", exc_info=True)
        return None
    input_usd, output_usd, read_usd, write_usd, savings_usd = parts
    if rates.pico:
        return _cost_of(
            (input_usd + output_usd + read_usd + write_usd) / _PICO,
            input_usd / _PICO,
            output_usd / _PICO,
            read_usd / _PICO,
            write_usd / _PICO,
            savings_usd / _PICO,
            resolved.source,
        )
    return Cost(
        total_usd=float(input_usd + output_usd + read_usd + write_usd),
        input_usd=float(input_usd),
        output_usd=float(output_usd),
        cache_read_usd=float(read_usd),
        cache_write_usd=float(write_usd),
        cache_savings_usd=float(savings_usd),
        source=resolved.source,
    )


def _cost(rate: _Rate, count: int, tier_tokens: int) -> Decimal | int:
    """What ``count`` units at ``rate`` cost: an exact Decimal of USD, or an int of
    pico-dollars for pico rates."""
    if rate is None or count <= 0:
        return _ZERO
    kind = type(rate)
    if kind is int:
        return rate * count  # type: ignore[operator]
    if kind is _PicoTiers:
        flat = rate.base  # type: ignore[union-attr]
        for start, tier_price in rate.tiers:  # type: ignore[union-attr]
            if tier_tokens > start:
                flat = tier_price
                break
        return flat * count
    if kind is not Decimal:
        if type(rate) is not TieredPrices:
            return calc_unit_price(rate, count, tier_tokens, _MTOK)
        # calc_unit_price's tier rule: the highest tier whose start the call's input
        # exceeds prices every token of the call, else the base rate.
        flat = rate.base
        for tier in reversed(rate.tiers):
            if tier_tokens > tier.start:
                flat = tier.price
                break
        rate = flat
    # calc_unit_price's arithmetic (Decimal times an int is exact, as its Decimal(count)
    # is) without its conversions: the same Decimal, bit for bit.
    return rate * count / _MTOK


def _price_parts(usage: Usage, rates: _Rates) -> tuple[Any, Any, Any, Any, Any]:
    """(input, output, cache read, cache write, cache savings), exact: Decimals of USD,
    or ints of pico-dollars when ``rates.pico``."""
    tier_tokens = usage.input_tokens
    read = usage.cache_read_input_tokens if rates.cache_read is not None else 0
    write_1h = usage.cache_creation_1h_input_tokens if rates.cache_write_1h is not None else 0
    write_5m = usage.cache_creation_5m_input_tokens if rates.cache_write_5m is not None else 0
    write_rest = 0
    if rates.cache_write is not None:
        write_rest = max(usage.cache_creation_input_tokens - write_1h - write_5m, 0)
    uncached = max(usage.input_tokens - read - write_1h - write_5m - write_rest, 0)
    reasoning = usage.reasoning_output_tokens if rates.output_reasoning is not None else 0
    output = max(usage.output_tokens - reasoning, 0)

    # Parts with no tokens are skipped here rather than in _cost: most calls touch no
    # cache and no reasoning, and this runs on every call.
    input_usd = _cost(rates.input, uncached, tier_tokens)
    read_usd = _cost(rates.cache_read, read, tier_tokens) if read > 0 else _ZERO
    write_usd = _ZERO
    if write_rest > 0:
        write_usd += _cost(rates.cache_write, write_rest, tier_tokens)
    if write_5m > 0:
        write_usd += _cost(rates.cache_write_5m, write_5m, tier_tokens)
    if write_1h > 0:
        write_usd += _cost(rates.cache_write_1h, write_1h, tier_tokens)
    output_usd = _cost(rates.output, output, tier_tokens)
    if reasoning > 0:
        output_usd += _cost(rates.output_reasoning, reasoning, tier_tokens)
    # All input at the plain rate: with no cache tokens that is the uncached part already.
    full_usd = (
        input_usd if uncached == usage.input_tokens else _cost(rates.input, usage.input_tokens, tier_tokens)
    )
    savings_usd = full_usd - (input_usd + read_usd + write_usd)
    if rates.requests_per_k is not None:
        if rates.pico:
            input_usd += rates.requests_per_k  # type: ignore[operator]
        else:
            input_usd += calc_unit_price(rates.requests_per_k, 1, tier_tokens, 1000)
    return input_usd, output_usd, read_usd, write_usd, savings_usd


# -- lookup ------------------------------------------------------------------------


@functools.lru_cache(maxsize=_LRU_SIZE)
def _resolve(provider: str | None, model: str) -> _Resolved | None:
    override = _match_override(provider, model)
    if override is not None:
        return _Resolved(PRICE_SOURCE_OVERRIDE, rates=override)
    try:
        found = _find_genai_model(provider, model)
    except Exception:
        _warn_once(provider, model, "genai-prices lookup failed", exc_info=True)
        return None
    if found is None:
        _warn_once(provider, model, "not in genai-prices")
        return None
    return _Resolved(_GENAI_PRICES_SOURCE, model=found)


def _find_genai_model(provider: str | None, model: str) -> ModelInfo | None:
    snapshot = data_snapshot.get_snapshot()
    if provider:
        provider_id = _PROVIDER_IDS.get(provider.lower(), provider)
        try:
            return snapshot.find_provider_model(model, None, provider_id, None)[1]
        except LookupError:
            pass
    try:
        return snapshot.find_provider_model(model, None, None, None)[1]
    except LookupError:
        return None


def _warn_once(provider: str | None, model: str | None, why: str, *, exc_info: bool = False) -> None:
    failures.warn_once(
        logger,
        (provider, model),
        "no price for model %r (provider %r): %s; its calls get no cost. "
        "To price it, add it to a price override file (%s=path, see otel_llm.pricing).",
        model,
        provider,
        why,
        ENV_PRICES,
        exc_info=exc_info,
    )


# -- overrides ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Override:
    model: str  # lower-cased
    provider: str | None  # lower-cased
    is_glob: bool
    rates: _Rates

    def matches(self, provider: str | None, model: str) -> bool:
        if self.provider is not None and self.provider != provider:
            return False
        return fnmatch.fnmatchcase(model, self.model) if self.is_glob else model == self.model


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.overrides: tuple[_Override, ...] = ()
        self.env_checked = False
        self.snapshot: data_snapshot.DataSnapshot | None = None


_state = _State()


def _match_override(provider: str | None, model: str) -> _Rates | None:
    provider_l = provider.lower() if provider else None
    model_l = model.lower()
    for override in _state.overrides:  # exact names first, then globs (sorted at load)
        if override.matches(provider_l, model_l):
            return override.rates
    return None


def load_overrides(path: str | os.PathLike[str]) -> None:
    """Load a price override file (YAML or JSON), replacing any loaded before.

    Raises ``ValueError`` naming the file, the key and what was expected when the file
    cannot be read or does not have the documented shape.
    """
    overrides = _read_overrides(path)
    with _state.lock:
        _state.overrides = overrides
        _state.env_checked = True
    failures.forget(logger)
    _resolve.cache_clear()


def _load_env_overrides() -> None:
    with _state.lock:
        if _state.env_checked:
            return
        _state.env_checked = True
        path = os.environ.get(ENV_PRICES)
        if not path:
            return
        try:
            _state.overrides = _read_overrides(path)
        except ValueError as exc:
            logger.error("%s ignored: %s", ENV_PRICES, exc)
            return
    _resolve.cache_clear()


_PRICE_KEYS = ("input", "output", "cache_read", "cache_write", "cache_write_1h")
_ENTRY_KEYS = ("model", "provider", *_PRICE_KEYS)
_REQUIRED_KEYS = ("model", "input", "output")


def _read_overrides(path: str | os.PathLike[str]) -> tuple[_Override, ...]:
    name = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{name}: cannot read price overrides: {exc}") from exc
    try:
        data = json.loads(text) if name.lower().endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if name.lower().endswith(".json") else "YAML"
        raise ValueError(f"{name}: not valid {kind}: {exc}") from exc
    return _parse_overrides(data, name)


def _parse_overrides(data: Any, name: str) -> tuple[_Override, ...]:
    def fail(where: str, expected: str, got: Any) -> ValueError:
        return ValueError(f"{name}: {where}: expected {expected}, got {got!r}")

    if not isinstance(data, Mapping) or "models" not in data:
        raise fail("top level", "a mapping with a 'models' list", data)
    extra = sorted(str(key) for key in data if key != "models")
    if extra:
        raise fail("top level", "only the key 'models'", extra[0])
    entries = data["models"]
    if not isinstance(entries, list):
        raise fail("models", "a list of model prices", entries)

    parsed: list[_Override] = []
    for index, entry in enumerate(entries):
        where = f"models[{index}]"
        if not isinstance(entry, Mapping):
            raise fail(where, "a mapping with model, input, output", entry)
        for key in entry:
            if key not in _ENTRY_KEYS:
                raise fail(f"{where}.{key}", f"no such key (known keys: {', '.join(_ENTRY_KEYS)})", key)
        for key in _REQUIRED_KEYS:
            if key not in entry:
                raise fail(where, f"a '{key}' key", dict(entry))
        model = entry["model"]
        if not isinstance(model, str) or not model.strip():
            raise fail(f"{where}.model", "a model name or glob", model)
        provider = entry.get("provider")
        if provider is not None and (not isinstance(provider, str) or not provider.strip()):
            raise fail(f"{where}.provider", "a gen_ai.provider.name such as 'openai'", provider)
        prices: dict[str, Decimal] = {}
        for key in _PRICE_KEYS:
            if key not in entry:
                continue
            value = entry[key]
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise fail(f"{where}.{key}", "a number >= 0 (USD per million tokens)", value)
            prices[key] = Decimal(str(value))
        model_l = model.strip().lower()
        parsed.append(
            _Override(
                model=model_l,
                provider=provider.strip().lower() if provider else None,
                is_glob=any(char in model_l for char in "*?["),
                rates=_Rates(
                    input=prices["input"],
                    output=prices["output"],
                    cache_read=prices.get("cache_read"),
                    cache_write=prices.get("cache_write"),
                    cache_write_1h=prices.get("cache_write_1h"),
                ),
            )
        )
    # Exact names before globs; sorted() is stable, so file order holds within each.
    return tuple(sorted(parsed, key=lambda override: override.is_glob))


def _reset_for_tests() -> None:
    """Forget overrides, warnings, the environment check and the lookup cache."""
    with _state.lock:
        _state.overrides = ()
        _state.env_checked = False
    failures.forget(logger)
    _resolve.cache_clear()
