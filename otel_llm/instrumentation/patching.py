"""Wrapping and unwrapping SDK methods, shared by the provider instrumentors."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import unwrap

from otel_llm import tasks
from otel_llm.instrumentation.inference import Telemetry

logger = logging.getLogger("otel_llm.instrumentation")

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class Patch:
    """One SDK method to wrap: ``module``, ``"Class.method"``, and a factory that makes
    the wrapper from the instrumentor's :class:`Telemetry`."""

    module: str
    target: str
    make_wrapper: Callable[[Telemetry], Wrapper]


class ProviderInstrumentor(BaseInstrumentor):
    """Base of the OpenAI and Anthropic instrumentors: wraps every patch on
    ``instrument()`` and unwraps each one independently on ``uninstrument()``."""

    _patches: Sequence[Patch] = ()
    _dependencies: Collection[str] = ()

    def instrumentation_dependencies(self) -> Collection[str]:
        return self._dependencies

    def _instrument(self, **kwargs: Any) -> None:
        # First, because it may refuse (a bad budget policy): then nothing is wrapped
        # and a corrected retry does not wrap twice.
        tasks.instrumentation_started(tracer_provider=kwargs.get("tracer_provider"))
        telemetry = Telemetry(
            tracer_provider=kwargs.get("tracer_provider"),
            meter_provider=kwargs.get("meter_provider"),
            capture_content=kwargs.get("capture_content"),
        )
        for patch in self._patches:
            try:
                wrapt.wrap_function_wrapper(patch.module, patch.target, patch.make_wrapper(telemetry))
            except (ImportError, AttributeError) as exc:
                # An SDK version without this surface: instrument the rest.
                logger.debug("otel-llm: %s.%s not wrapped: %s", patch.module, patch.target, exc)

    def _uninstrument(self, **kwargs: Any) -> None:
        for patch in self._patches:
            owner, _, method = patch.target.rpartition(".")
            try:
                unwrap(f"{patch.module}.{owner}" if owner else patch.module, method)
            except Exception as exc:
                logger.warning("otel-llm: could not unwrap %s.%s: %s", patch.module, patch.target, exc)
        tasks.instrumentation_stopped()
