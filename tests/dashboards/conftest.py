"""A real chDB store for the dashboard and query tests, and the generated workload."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_llm.report.sample import Sample, generate
from otel_llm.storage import prices
from otel_llm.storage.backend import Backend, open_backend
from otel_llm.storage.config import StorageConfig
from otel_llm.storage.migrations import apply_schema
from otel_llm.storage.records import spans_to_arrow


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Backend]:
    backend = open_backend(StorageConfig(path=str(tmp_path / "ch")))
    apply_schema(backend)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Backend, Sample]]:
    """One store per module, loaded with the sample workload (read-only for tests)."""
    backend = open_backend(StorageConfig(path=str(tmp_path_factory.mktemp("ch") / "ch")))
    apply_schema(backend)
    sample = generate()
    backend.insert_arrow("otel_traces", spans_to_arrow(sample.spans))
    prices.refresh(backend)
    yield backend, sample
    backend.close()
