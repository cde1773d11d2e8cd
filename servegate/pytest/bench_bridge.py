"""Gated metrics as pytest-benchmark records, so ``--benchmark-autosave``, ``--benchmark-compare`` and
``pytest-benchmark compare`` work on servegate runs as users know them (design.md: pytest-benchmark is the store
for A/B; our own gate does the statistics).

Each gated metric of a case becomes one benchmark whose *rounds are the per-start values* (one server start, one
round), not Python wall times. pytest-benchmark assumes every number is a time in seconds where lower is better
(its table scales to ms/us, its ``--benchmark-compare-fail`` treats an increase as a regression), so values are
stored in that shape:

- latencies (``*_ms``) in seconds: ``ttft_median_ms`` is the benchmark ``ttft_median`` and shows as ms;
- throughputs as their reciprocal, time per unit: ``output_throughput`` is the benchmark ``1/output_throughput``
  (seconds per output token), and pytest-benchmark's OPS column (1/mean) then reads as tokens/s.

Names are ``<metric>`` (``<level>/<metric>`` for multi-level cases), the group is the case id, so a compare table
shows one config's TTFT, ITL, E2EL and throughputs side by side; the fullname ``<case id>::<metric>`` is the key
compare matches runs by. ``machine_info["servegate"]`` carries the detected GPU/CPU fingerprint.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from types import SimpleNamespace
from typing import Any

import pytest

from servegate.gate import DEFAULT_GATED_METRICS, gated_keys
from servegate.metrics import direction_of
from servegate.record import Case

MACHINE_KEY = "servegate"


def benchmark_session_of(config: pytest.Config) -> Any | None:
    """pytest-benchmark's session object, or None when the plugin is absent or disabled (e.g. under xdist)."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or getattr(session, "disabled", False):
        return None
    return session


def benchmark_value(metric: str, value: float) -> float:
    """A per-start value in pytest-benchmark's shape: seconds, lower is better (see the module docstring)."""
    base = metric.rsplit("/", 1)[-1]
    if base.endswith("_ms"):
        return value / 1000.0
    if base.endswith("_s"):
        return value
    if direction_of(base) == "higher":
        return 1.0 / value
    return value


def benchmark_name(metric: str) -> str:
    """``ttft_median_ms`` -> ``ttft_median`` (shown in seconds' units), ``output_throughput`` -> its reciprocal."""
    level, _, base = metric.rpartition("/")
    prefix = f"{level}/" if level else ""
    if base.endswith("_ms"):
        return prefix + base.removesuffix("_ms")
    if not base.endswith("_s") and direction_of(base) == "higher":
        return f"{prefix}1/{base}"
    return prefix + base


def record_benchmarks(
    benchmark_session: Any,
    node: pytest.Item | None,
    case: Case,
    machine: Mapping[str, Any] | None = None,
    metrics: Iterable[str] = DEFAULT_GATED_METRICS,
) -> list[Any]:
    """Append one pytest-benchmark record per gated metric of ``case`` to ``benchmark_session.benchmarks``.

    The rounds are the case record's per-start values (``Case.values``); non-finite or non-positive values are
    left out (a reciprocal needs a positive number), and a metric left with no value gets no record.
    ``machine`` (e.g. ``detected().fingerprint()``) is stored under ``machine_info["servegate"]`` when the
    session saves; without it the detected hardware is used. Returns the records (empty when ``benchmark_session``
    is None, so callers need not check whether pytest-benchmark is active).
    """
    if benchmark_session is None:
        return []
    from pytest_benchmark.stats import Metadata

    if machine is not None:
        benchmark_session.servegate_machine = dict(machine)
    records = []
    case_id, values = case.id, case.values
    for key in gated_keys(values, tuple(metrics)):
        data = [benchmark_value(key, v) for v in values[key] if math.isfinite(v) and v > 0]
        if not data:
            continue
        name = benchmark_name(key)
        fixture = SimpleNamespace(
            name=name,
            fullname=f"{case_id}::{name}",
            group=case_id,
            param=None,
            params=None,
            extra_info={
                MACHINE_KEY: True,  # marks servegate records for pytest_benchmark_scale_unit
                "metric": key,
                "values": list(values[key]),  # the measurements as the gate sees them, in their own units
                "unit": _unit(key),
                "starts": len(values[key]),
                "nodeid": node.nodeid if node is not None else None,
            },
            cprofile_stats=None,
            has_error=False,
        )
        record = Metadata(fixture, iterations=1, options={"timer": "servegate: one round per server start"})
        for x in data:
            record.update(x)
        benchmark_session.benchmarks.append(record)
        records.append(record)
    return records


def _unit(metric: str) -> str:
    base = metric.rsplit("/", 1)[-1]
    if base.endswith("_ms"):
        return "ms (stored as s)"
    if base.endswith("_s"):
        return "s"
    if direction_of(base) == "higher":
        return "per s (stored as the reciprocal, s per unit; OPS = the throughput)"
    return ""


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """Put the benchmarked hardware (GPU or CPU fingerprint) into every saved run's machine_info.

    Registered by loading this module as a plugin (``-p servegate.pytest.bench_bridge`` or the servegate plugin's
    ``pytest_configure``). It runs at configure time (compare) and at save time, so both see the same value unless
    ``record_benchmarks`` was handed a different ``machine``.
    """
    session = getattr(config, "_benchmarksession", None)
    machine = getattr(session, "servegate_machine", None)
    if machine is None:
        from servegate.hardware.detect import detected

        machine = detected().fingerprint()
    machine_info[MACHINE_KEY] = machine


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # firstresult: must run before pytest-benchmark's own
def pytest_benchmark_scale_unit(
    config: pytest.Config | None, unit: str, benchmarks: list[dict[str, Any]], best: Any, worst: Any, sort: str
) -> tuple[str, float] | None:
    """Tables of servegate records only: times in ms (TTFT 771 ms, not 771,000 us) and OPS unscaled (tok/s).

    pytest-benchmark picks one unit per table from its fastest entry; a group mixing ITL (ms) and seconds per
    token (us) would otherwise print TTFT in microseconds. Mixed tables keep pytest-benchmark's own choice.
    """
    if not benchmarks or not all((b.get("extra_info") or {}).get(MACHINE_KEY) for b in benchmarks):
        return None
    if config is not None and config.getoption("benchmark_time_unit", None) not in (None, "auto"):
        return None  # the user asked for a unit
    return ("m", 1e3) if unit == "seconds" else ("", 1.0)
