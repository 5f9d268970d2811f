"""Test infrastructure shared by the suites (importable as ``support``: ``tests`` is on
pytest's ``pythonpath``)."""
