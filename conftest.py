"""Thin pytest glue: the servegate plugin and the shared fixtures (see fixtures/)."""

pytest_plugins = ["servegate.pytest.plugin", "fixtures.servers"]
