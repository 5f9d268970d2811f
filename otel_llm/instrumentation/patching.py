"""Wrapping and unwrapping SDK methods, shared by the provider instrumentors.

The SDK is wrapped when the program imports it, not when the instrumentor loads: under
``opentelemetry-instrument`` every installed instrumentor is instrumented at start-up,
and importing the OpenAI SDK, the Anthropic SDK and LiteLLM up front costs seconds that a
program using none of them should not pay. ``instrument()`` registers a post-import hook
(``wrapt.register_post_import_hook``) on the instrumented package; it runs at once when the
package is already imported, else right after the program's ``import`` of it finishes.
``bench/startup.py`` measures the difference.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import unwrap

from otel_llm import tasks
from otel_llm.instrumentation.inference import Telemetry, log_failure_once

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
    """Base of the OpenAI, Anthropic and LiteLLM instrumentors: wraps every patch when the
    instrumented package is imported (see the module docstring) and unwraps each one
    independently on ``uninstrument()``."""

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
        # Identifies this instrument(): a hook still pending after uninstrument() (the
        # package was never imported) finds another token, or none, and does nothing.
        token = object()
        self._token = token
        self._wrapped: list[Patch] = []
        for package in dict.fromkeys(patch.module.partition(".")[0] for patch in self._patches):

            def on_import(module: ModuleType, package: str = package) -> None:
                self._wrap(package, telemetry, token)

            wrapt.register_post_import_hook(on_import, package)

    def _wrap(self, package: str, telemetry: Telemetry, token: object) -> None:
        if getattr(self, "_token", None) is not token:
            return
        for patch in self._patches:
            if patch.module.partition(".")[0] != package:
                continue
            try:
                wrapt.wrap_function_wrapper(patch.module, patch.target, patch.make_wrapper(telemetry))
            except (ImportError, AttributeError) as exc:
                # An SDK version without this surface: instrument the rest.
                logger.debug("otel-llm: %s.%s not wrapped: %s", patch.module, patch.target, exc)
                continue
            except Exception as exc:
                # Runs inside the program's import: never let it fail.
                log_failure_once(f"wrapping {patch.module}.{patch.target}", exc)
                continue
            self._wrapped.append(patch)

    def _uninstrument(self, **kwargs: Any) -> None:
        self._token = None
        wrapped, self._wrapped = getattr(self, "_wrapped", []), []
        for patch in wrapped:
            owner, _, method = patch.target.rpartition(".")
            try:
                unwrap(f"{patch.module}.{owner}" if owner else patch.module, method)
            except Exception as exc:
                logger.warning("otel-llm: could not unwrap %s.%s: %s", patch.module, patch.target, exc)
        tasks.instrumentation_stopped()
