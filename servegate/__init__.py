"""servegate: benchmark and regression gate for vLLM serving."""

__version__ = "0.1.0"
