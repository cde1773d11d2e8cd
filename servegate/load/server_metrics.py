"""The server's own view of a run: its Prometheus ``/metrics`` scraped before, during and after each level.

Before/after give counter and histogram deltas (tokens, preemptions, the server's TTFT histogram); scrapes during
the run give gauge peaks (KV-cache usage, running and waiting requests), which a before/after pair cannot see.
Everything is parsed with prometheus_client's text parser. Scrapes during the run run on a thread and parse only
the gauge lines they need, so they cost the client's event loop microseconds, not the milliseconds a full parse of
vLLM's exposition would hold the GIL for.
"""

from __future__ import annotations

import math
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

GAUGES = {
    "vllm:kv_cache_usage_perc": "kv_cache_usage_peak",
    "vllm:gpu_cache_usage_perc": "kv_cache_usage_peak",  # vLLM < 0.10 spelled it so
    "vllm:num_requests_running": "running_peak",
    "vllm:num_requests_waiting": "waiting_peak",
}
COUNTERS = {
    "vllm:num_preemptions_total": "preemptions",
    "vllm:prompt_tokens_total": "prompt_tokens",
    "vllm:generation_tokens_total": "generation_tokens",
    "vllm:request_success_total": "requests_finished",
    # prefix caching, in tokens: queried = prompt tokens looked up, hits = of those, found cached
    "vllm:prefix_cache_queries_total": "prefix_cache_queries",
    "vllm:prefix_cache_hits_total": "prefix_cache_hits",
    # speculative decoding (any method: n-gram, EAGLE, MTP, a draft model)
    "vllm:spec_decode_num_drafts_total": "spec_drafts",
    "vllm:spec_decode_num_draft_tokens_total": "spec_draft_tokens",
    "vllm:spec_decode_num_accepted_tokens_total": "spec_accepted_tokens",
}
# Counters kept per label value instead of summed: name -> label (per-position acceptance of speculative decoding).
PER_LABEL = {"vllm:spec_decode_num_accepted_tokens_per_pos_total": "position"}
HISTOGRAMS = {
    "vllm:time_to_first_token_seconds": "ttft_server",
    "vllm:inter_token_latency_seconds": "itl_server",
    "vllm:e2e_request_latency_seconds": "e2el_server",
}


@dataclass
class Snapshot:
    """Samples summed over label sets (engines, models): name -> value; histogram buckets as name -> {le: count}."""

    values: dict[str, float] = field(default_factory=dict)
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)


def parse(text: str) -> Snapshot:
    snap = Snapshot()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if name in PER_LABEL and PER_LABEL[name] in sample.labels:
                key = f"{name}{{{PER_LABEL[name]}={sample.labels[PER_LABEL[name]]}}}"
                snap.values[key] = snap.values.get(key, 0.0) + sample.value
            elif name.endswith("_bucket") and "le" in sample.labels:
                le = float(sample.labels["le"])
                per = snap.buckets.setdefault(name[: -len("_bucket")], {})
                per[le] = per.get(le, 0.0) + sample.value
            else:
                snap.values[name] = snap.values.get(name, 0.0) + sample.value
    return snap


def histogram_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float:
    """Prometheus' histogram_quantile over the bucket deltas: linear interpolation inside the bucket."""
    les = sorted(after)
    counts = [after[le] - before.get(le, 0.0) for le in les]
    if not counts or counts[-1] <= 0:
        return math.nan
    rank = q * counts[-1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in zip(les, counts, strict=True):
        if count >= rank:
            if math.isinf(le):
                return prev_le
            width = count - prev_count
            return prev_le + (le - prev_le) * ((rank - prev_count) / width if width > 0 else 1.0)
        prev_le, prev_count = le, count
    return math.nan


class Scraper:
    """Scrapes ``<base_url>/metrics``; a failing endpoint is counted, never fatal (external servers may hide it)."""

    def __init__(self, base_url: str, interval_s: float = 1.0, timeout_s: float = 5.0) -> None:
        self.url = base_url.rstrip("/") + "/metrics"
        self.interval_s = interval_s
        self.timeout_s = timeout_s

    def fetch(self) -> str | None:
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout_s) as resp:
                return resp.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return None

    def snapshot(self) -> Snapshot | None:
        text = self.fetch()
        if text is None:
            return None
        try:
            return parse(text)
        except ValueError:
            return None

    def gauges(self) -> dict[str, float] | None:
        """Only the gauge lines (and their TYPE lines), parsed with prometheus_client: cheap enough mid-run."""
        text = self.fetch()
        if text is None:
            return None
        keep = [
            line
            for line in text.splitlines()
            if line.startswith(GAUGES_TUPLE) or (line.startswith("# TYPE ") and line[7:].startswith(GAUGES_TUPLE))
        ]
        try:
            return parse("\n".join(keep) + "\n").values
        except ValueError:
            return None

    def _settled(self, max_wait_s: float = 1.0) -> Snapshot | None:
        """The "after" snapshot, once finished-request and token counters stop moving: the server updates them
        just after it sends a response's last bytes, so a scrape right at the end can miss the last requests."""
        after = self.snapshot()
        waited = 0.0
        while after is not None and waited < max_wait_s:
            time.sleep(0.1)
            waited += 0.1
            again = self.snapshot()
            if again is None:
                break
            keys = ("vllm:request_success_total", "vllm:generation_tokens_total")
            if all(again.values.get(k) == after.values.get(k) for k in keys):
                return again
            after = again
        return after

    @contextmanager
    def window(self) -> Iterator[dict[str, float]]:
        """Scrape before, every ``interval_s`` during, and after the body; the yielded dict is filled on exit."""
        out: dict[str, float] = {}
        before = self.snapshot()
        peaks: dict[str, float] = {}
        scrapes = [0, 0]  # ok, failed
        stop = threading.Event()

        def note(values: dict[str, float]) -> None:
            for metric, key in GAUGES.items():
                if metric in values:
                    peaks[key] = max(peaks.get(key, 0.0), values[metric])

        def loop() -> None:
            while not stop.wait(self.interval_s):
                values = self.gauges()
                scrapes[0 if values is not None else 1] += 1
                if values is not None:
                    note(values)

        thread = threading.Thread(target=loop, name="servegate-scrape", daemon=True)
        thread.start()
        try:
            yield out
        finally:
            stop.set()
            thread.join(self.timeout_s + 1)
            after = self._settled()
            if before is None or after is None:
                out["scrape_failed"] = 1.0
            else:
                note(before.values)
                note(after.values)
                out.update(peaks)
                out.update(deltas(before, after))
                out["scrapes_during"] = float(scrapes[0])


def deltas(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """Counter deltas and histogram summaries (mean, median, p99 in ms, count) of what happened in between."""
    out: dict[str, float] = {}
    for metric, key in COUNTERS.items():
        if metric in after.values:
            out[key] = after.values[metric] - before.values.get(metric, 0.0)
    out.update(_ratios(out, before, after))
    for metric, key in HISTOGRAMS.items():
        count_name, sum_name = metric + "_count", metric + "_sum"
        if count_name not in after.values:
            continue
        count = after.values[count_name] - before.values.get(count_name, 0.0)
        total = after.values.get(sum_name, 0.0) - before.values.get(sum_name, 0.0)
        out[f"{key}_count"] = count
        if count > 0:
            out[f"{key}_mean_ms"] = total / count * 1000.0
            b0, b1 = before.buckets.get(metric, {}), after.buckets.get(metric, {})
            out[f"{key}_median_ms"] = histogram_quantile(0.5, b0, b1) * 1000.0
            out[f"{key}_p99_ms"] = histogram_quantile(0.99, b0, b1) * 1000.0
    return out


GAUGES_TUPLE = tuple(GAUGES)


def _ratios(counts: dict[str, float], before: Snapshot, after: Snapshot) -> dict[str, float]:
    """Rates over the window: prefix-cache hit rate (cached / queried prompt tokens) and, with speculative decoding,
    acceptance rate (accepted / drafted tokens), mean acceptance length (1 + accepted per draft: the target model's
    own token counts) and the acceptance rate at each draft position (accepted at k / drafts), as ``vllm bench
    serve`` reports them."""
    out: dict[str, float] = {}
    if counts.get("prefix_cache_queries", 0) > 0:
        out["prefix_cache_hit_rate"] = counts.get("prefix_cache_hits", 0.0) / counts["prefix_cache_queries"]
    drafts = counts.get("spec_drafts", 0.0)
    if drafts > 0 and counts.get("spec_draft_tokens", 0) > 0:
        accepted = counts.get("spec_accepted_tokens", 0.0)
        out["spec_acceptance_rate"] = accepted / counts["spec_draft_tokens"]
        out["spec_mean_acceptance_length"] = 1.0 + accepted / drafts
        for name, label in PER_LABEL.items():
            prefix = f"{name}{{{label}="
            for key, value in after.values.items():
                if key.startswith(prefix):
                    position = key[len(prefix) : -1]
                    out[f"spec_acceptance_pos{position}"] = (value - before.values.get(key, 0.0)) / drafts
    return out
