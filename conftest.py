"""Thin pytest glue: the servegate plugin, its pytest-benchmark bridge and the shared fixtures (see fixtures/)."""

pytest_plugins = ["servegate.plugin", "servegate.bench_bridge", "fixtures.servers"]
