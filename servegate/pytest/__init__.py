"""The pytest glue: the plugin (options, hardware markers, suite parametrization, the bench fixture, the summary),
its option checks and the pytest-benchmark bridge. Thin wiring over the library; nothing outside this package
imports it, so servegate works without a pytest session (``servegate`` CLI, ``servegate merge``)."""
