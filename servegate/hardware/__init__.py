"""The hardware a run is on, what it can do on paper, and what it does while a server runs.

One module per job, imported directly (``from servegate.hardware.detect import detected``); this package
re-exports nothing, so each name has one import path:

* ``specs``: the pytest hardware markers, their labels, the data-sheet figures (``SPECS``, ``spec_for``);
* ``tools``: running amd-smi / rocm-smi / nvidia-smi without ever raising, and reading their output;
* ``detect``: the parsers of the tools' static output, ``HardwareInfo``, ``detect``/``detected``, skip reasons;
* ``telemetry``: ``TelemetrySampler`` and the parsers of the tools' metric output.
"""
