"""Startup facts from a vLLM server log.

The patterns are the log lines vLLM itself prints (format strings in vLLM's source, e.g. ``"Model loading took %s
GiB and %.6f seconds"`` in the GPU model runner, ``"%s KV cache size: %s tokens"`` in ``kv_cache_utils``, ``"init
engine (profile, create kv cache, warmup model) took %.2f seconds"`` in the engine core, ``"Using <backend>
backend."`` as quoted by seed 004). Lines differ a little across versions ("GiB memory and" vs "GiB and", "s" vs
"seconds"), so each pattern accepts the variants seen. A fact that no line gives stays None: absence is reported,
never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from servegate.launch.base import StartupFacts

_NUM = r"([0-9][0-9,]*(?:\.[0-9]+)?)"


def _num(text: str) -> float:
    return float(text.replace(",", ""))


_VERSION_PATTERNS = [
    re.compile(r"vLLM API server version v?([0-9][^\s,]*)"),
    re.compile(r"Initializing a V1 LLM engine \(v([0-9][^\s)]*)\)"),
    re.compile(r"\bversion (\d+\.\d+\.\d+[^\s]*)\s*$"),  # the ASCII-art banner of vLLM >= 0.11
]
_ENGINE_INIT = re.compile(r"init engine \(profile, create kv cache, warmup model\) took " + _NUM + r"\s*s")
_KV_TOKENS = re.compile(r"(?:GPU|CPU|XPU|TPU)? ?KV cache size: " + _NUM + r" tokens")
_MAX_CONCURRENCY = re.compile(r"Maximum concurrency for " + _NUM + r" tokens per request: " + _NUM + r"x")
_MODEL_LOAD = re.compile(r"Model loading took " + _NUM + r"\s*GiB(?: memory)? and " + _NUM + r"\s*s")
_CPU_MODEL_INIT = re.compile(r"Initializing model took " + _NUM + r" seconds")
_COMPILE = re.compile(r"torch\.compile takes " + _NUM + r" s in total")
_CPU_WARMUP = re.compile(r"Initial profiling/warmup run took " + _NUM + r" s")
_GRAPH_CAPTURE = re.compile(r"Graph capturing finished in " + _NUM + r" secs?")
_BACKEND = re.compile(r"Using (?:AttentionBackendEnum\.)?([A-Z][A-Z0-9_]+) (?:attention )?backend\b")
_AITER_ON = re.compile(r"\bAITER\b.*\b(enabled|is enabled)\b", re.IGNORECASE)
# vLLM's AOT compile cache (compilation/decorators.py): what a start did with the cache in VLLM_CACHE_ROOT.
_CACHE_LOADED = re.compile(r"Directly load AOT compilation from path ")
_CACHE_LOAD_FAILED = re.compile(r"Compiling model again due to a load failure from \S+, reason: (.*)$")
_CACHE_SAVED = re.compile(r"saved AOT compiled function to ")


def parse_startup_log(lines: Iterable[str]) -> StartupFacts:
    """Scan a whole log; the last occurrence of a fact wins (a restarted engine re-logs its facts)."""
    facts = StartupFacts()
    for line in lines:
        _scan_line(line, facts)
    return facts


def _scan_line(line: str, facts: StartupFacts) -> None:
    if facts.vllm_version is None:
        for pattern in _VERSION_PATTERNS:
            if m := pattern.search(line):
                facts.vllm_version = m.group(1)
                break
    if m := _ENGINE_INIT.search(line):
        facts.engine_init_s = _num(m.group(1))
    if m := _KV_TOKENS.search(line):
        facts.kv_cache_tokens = int(_num(m.group(1)))
    if m := _MAX_CONCURRENCY.search(line):
        facts.extra["max_concurrency_at_tokens"] = int(_num(m.group(1)))
        facts.max_concurrency = _num(m.group(2))
    if m := _MODEL_LOAD.search(line):
        facts.extra["model_memory_gib"] = _num(m.group(1))
        facts.model_load_s = _num(m.group(2))
    elif m := _CPU_MODEL_INIT.search(line):
        facts.model_load_s = _num(m.group(1))
    if m := _COMPILE.search(line):
        facts.compile_s = _num(m.group(1))
    elif (m := _CPU_WARMUP.search(line)) and facts.compile_s is None:
        facts.extra["warmup_run_s"] = _num(m.group(1))
    if m := _GRAPH_CAPTURE.search(line):
        facts.extra["graph_capture_s"] = _num(m.group(1))
    if m := _BACKEND.search(line):
        facts.attention_backend = m.group(1)
    if _AITER_ON.search(line):
        facts.extra["aiter_logged"] = True
    _scan_compile_cache(line, facts)


def _scan_compile_cache(line: str, facts: StartupFacts) -> None:
    """``extra["compile_cache"]``: "loaded" (a warm start that reused it), "load failed: <vLLM's reason>" (found
    but unusable: compiled again), or "written" (compiled from scratch and saved). A load outcome is not overwritten
    by the save that follows a failed load."""
    if _CACHE_LOADED.search(line):
        facts.extra["compile_cache"] = "loaded"
    elif m := _CACHE_LOAD_FAILED.search(line):
        facts.extra["compile_cache"] = f"load failed: {m.group(1).strip()}"
    elif _CACHE_SAVED.search(line) and "compile_cache" not in facts.extra:
        facts.extra["compile_cache"] = "written"
