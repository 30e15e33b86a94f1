"""End-to-end tests share one stack per module: `module_stack` (tests/conftest.py)."""
