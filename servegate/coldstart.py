"""Cold-start phases from a server's startup facts (seed 001: image pull, weight load, torch.compile, ready).

vLLM logs the weight load and the engine init (profiling, KV cache allocation, compile and warmup); the launcher
measures the whole time to a healthy /health. What remains is process start, imports and the API server coming up.
"""

from __future__ import annotations

from servegate.launch.base import StartupFacts


def cold_start_phases(facts: StartupFacts) -> dict[str, float | None]:
    """Seconds per phase; None where the log did not say. The phases add up to ``time_to_ready_s``."""
    ready = facts.time_to_ready_s
    load = facts.model_load_s
    engine = facts.engine_init_s
    rest = None
    if ready is not None and engine is not None:
        rest = max(0.0, ready - engine - (load or 0.0))
    return {
        "process_and_api_s": rest,
        "weight_load_s": load,
        "compile_and_warmup_s": engine,
        "time_to_ready_s": ready,
    }
