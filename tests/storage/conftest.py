"""Fixtures of the storage suites: a real chDB store in a temp dir, schema applied."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.storage import make_config

from otel_llm.storage.backend import Backend, open_backend
from otel_llm.storage.config import StorageConfig
from otel_llm.storage.migrations import apply_schema


@pytest.fixture
def config(tmp_path: Path) -> StorageConfig:
    return make_config(tmp_path)


@pytest.fixture
def store(config: StorageConfig) -> Iterator[Backend]:
    backend = open_backend(config)
    apply_schema(backend)
    yield backend
    backend.close()
