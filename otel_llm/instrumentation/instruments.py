"""The metric instruments every instrumentor records to, created once per meter.

Names, units and descriptions come from the GenAI semantic conventions; the bucket
boundaries are the ones the conventions ask for (the semconv package's factories do not
set them, so the histograms are created here with the advisory boundaries).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from opentelemetry.metrics import CallbackOptions, Histogram, Meter, MeterProvider, Observation, get_meter
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.util.types import AttributeValue

TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
SECONDS_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip

COST_METRIC: Final = "otel_llm.client.cost"


class CostTotals:
    """The cost counter, kept as running sums that an ``ObservableCounter`` reports at
    each collection. Adding to a dict is ~0.3 us; a synchronous ``Counter.add`` costs the
    SDK ~6 us (it cleans and hashes the attributes on every call)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[tuple[tuple[str, AttributeValue], ...], float] = {}

    def add(self, amount: float, attributes: Mapping[str, AttributeValue]) -> None:
        self.add_to(self.key(attributes), amount)

    @staticmethod
    def key(attributes: Mapping[str, AttributeValue]) -> tuple[tuple[str, AttributeValue], ...]:
        """The running sum's key for ``attributes`` (callers with fixed attribute sets
        make it once and use :meth:`add_to`)."""
        return tuple(attributes.items())

    def add_to(self, key: tuple[tuple[str, AttributeValue], ...], amount: float) -> None:
        with self._lock:
            self._totals[key] = self._totals.get(key, 0.0) + amount

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            totals = list(self._totals.items())
        return [Observation(total, dict(key)) for key, total in totals]


@dataclass(frozen=True, slots=True)
class Instruments:
    token_usage: Histogram
    operation_duration: Histogram
    time_to_first_chunk: Histogram
    time_per_output_chunk: Histogram
    cost: CostTotals

    @classmethod
    def create(cls, meter: Meter) -> Instruments:
        cost = CostTotals()
        meter.create_observable_counter(
            name=COST_METRIC,
            callbacks=[cost.observe],
            unit="USD",
            description="Price of model calls in US dollars, as priced by otel-llm.",
        )
        return cls(
            token_usage=meter.create_histogram(
                name=gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE,
                unit="{token}",
                description="Number of input and output tokens used.",
                explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
            ),
            operation_duration=meter.create_histogram(
                name=gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION,
                unit="s",
                description="GenAI operation duration.",
                explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
            ),
            time_to_first_chunk=meter.create_histogram(
                name=gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
                unit="s",
                description="Time to receive the first chunk of a streamed response.",
                explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
            ),
            time_per_output_chunk=meter.create_histogram(
                name=gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK,
                unit="s",
                description="Time between consecutive chunks of a streamed response, after the first.",
                explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
            ),
            cost=cost,
        )


_by_provider: weakref.WeakKeyDictionary[MeterProvider, Instruments] = weakref.WeakKeyDictionary()
_by_provider_lock = threading.Lock()


def instruments_for(meter_provider: MeterProvider, scope: str, version: str) -> Instruments:
    """The one set of instruments of ``meter_provider``, shared by every instrumentor.

    The SDK keeps the first instrument registered under a name and drops the callbacks
    of a second registration, so two instrumentors (or one instrumented twice) creating
    their own observable cost counter would lose every cost but the first's.
    """
    with _by_provider_lock:
        found = _by_provider.get(meter_provider)
        if found is None:
            found = Instruments.create(get_meter(scope, version, meter_provider))
            _by_provider[meter_provider] = found
        return found
