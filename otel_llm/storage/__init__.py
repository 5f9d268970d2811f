"""Storage (placeholder docstring)."""
