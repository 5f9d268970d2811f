"""Stream wrappers that end the call's span exactly once, however the stream ends.

A wrapped stream behaves as the SDK's own object (``wrapt.ObjectProxy``: attributes,
``response``, ``isinstance`` all pass through). Every chunk goes to the provider's
:class:`StreamAccumulator`; the call ends on whichever comes first:

- exhaustion (``StopIteration`` / ``StopAsyncIteration``),
- an error raised while reading the stream (status ERROR, ``error.type``),
- ``close()`` / ``__exit__`` (also when the user leaves a ``with`` block early),
- ``GeneratorExit``: the stream is read inside a generator the caller closed early
  (``for chunk in stream: yield chunk``, LangChain's ``ChatOpenAI.stream``). Like
  ``close()``, a consumer's choice and not an error: the span ends with the usage seen so
  far (or an estimate) and status unset. A cancelled ``asyncio`` task
  (``CancelledError`` while awaiting a chunk, ``asyncio.timeout``) is recorded as the
  span's error (``error.type=CancelledError``), with the usage seen so far: a cancellation
  is often a timeout, which dashboards should show,
- the stream being dropped unfinished (``break`` and the last reference gone): a
  ``weakref.finalize`` hook ends the span with what had arrived. This is the one path
  that depends on garbage collection; in CPython it runs as soon as the stream is
  unreferenced (for stream helpers that sit in a reference cycle, such as Anthropic's
  ``MessageStream``, at the next cyclic collection), and at the latest at interpreter
  exit.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

import wrapt

from otel_llm.instrumentation.inference import InferenceCall, log_failure_once


class StreamAccumulator:
    """Collects what a provider's chunks say; the provider subclasses it."""

    __slots__ = ()

    skip: frozenset[type] = frozenset()
    """Chunk classes :meth:`add` would ignore: they are not handed to it at all (most of
    a stream's chunks are text deltas, and every call per chunk shows on a long stream)."""

    def add(self, chunk: Any) -> None:
        """Take one chunk (called for every chunk, in order)."""

    def finish(self, call: InferenceCall) -> None:
        """Hand what was collected to ``call`` (``call.set_response(...)``)."""


def _end(call: InferenceCall, accumulator: StreamAccumulator, error: BaseException | None) -> None:
    try:
        accumulator.finish(call)
    except Exception as exc:
        log_failure_once("reading a stream's final usage", exc)
    call.end(error)


class _StreamProxy(wrapt.ObjectProxy):
    def __init__(self, wrapped: Any, call: InferenceCall, accumulator: StreamAccumulator) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_accumulator = accumulator
        # Bound once: the chunk path runs for every chunk of every stream.
        self._self_tick = call.chunk
        self._self_add = accumulator.add
        self._self_skip = accumulator.skip
        self._self_done = weakref.finalize(self, _end, call, accumulator, None)
        call.response_arrived()

    def _self_end(self, error: BaseException | None = None) -> None:
        # detach() hands the callback to exactly one caller: this thread, another
        # closer, or the finalizer, whichever comes first.
        if self._self_done.detach() is not None:
            if isinstance(error, GeneratorExit):
                error = None  # the consumer stopped early: not an error
            _end(self._self_call, self._self_accumulator, error)


class SyncStream(_StreamProxy):
    """Wraps a synchronous SDK stream (``openai.Stream``, ``anthropic.Stream``, ...)."""

    def __iter__(self) -> Iterator[Any]:
        # A ``for`` loop, the usual way to read a stream, runs this generator: a resumed
        # frame per chunk, about half the cost of a ``__next__`` call through the proxy.
        # ``next(stream)`` still works, through ``__next__``; the two can be mixed.
        return self._self_chunks()

    def _self_chunks(self) -> Iterator[Any]:
        tick, add, skip = self._self_tick, self._self_add, self._self_skip
        try:
            for chunk in self.__wrapped__:
                try:  # inline, not a helper method: this runs for every chunk
                    tick()
                    if chunk.__class__ not in skip:
                        add(chunk)
                except Exception as exc:
                    log_failure_once("reading a stream chunk", exc)
                yield chunk
        except GeneratorExit:
            # The loop stopped early (``break``): the stream may still be read on, so
            # its end is left to exhaustion, close(), __exit__ or the finalizer.
            raise
        except BaseException as exc:
            self._self_end(exc)
            raise
        self._self_end()

    def __next__(self) -> Any:
        try:
            chunk = next(self.__wrapped__)
        except StopIteration:
            self._self_end()
            raise
        except BaseException as exc:
            self._self_end(exc)
            raise
        try:  # inline, not a helper method: this runs for every chunk
            self._self_tick()
            if chunk.__class__ not in self._self_skip:
                self._self_add(chunk)
        except Exception as exc:
            log_failure_once("reading a stream chunk", exc)
        return chunk

    def __enter__(self) -> SyncStream:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_end(exc)

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_end()


class AsyncStream(_StreamProxy):
    """Wraps an asynchronous SDK stream (``openai.AsyncStream``, ...)."""

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            self._self_end()
            raise
        except BaseException as exc:
            self._self_end(exc)
            raise
        try:  # inline, not a helper method: this runs for every chunk
            self._self_tick()
            if chunk.__class__ not in self._self_skip:
                self._self_add(chunk)
        except Exception as exc:
            log_failure_once("reading a stream chunk", exc)
        return chunk

    async def __aenter__(self) -> AsyncStream:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_end(exc)

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_end()
