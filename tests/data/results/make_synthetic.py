"""Regenerate ``synthetic-mi300x-sweep.json``: a SYNTHETIC results document exercising every optional report part.

Nothing in it was measured. It is a ``servegate.record.Session`` as the results file dumps one (values and stats
are computed with the real ``stats_of``, status labels with ``case_status``): gate rows, A/B rows, per-level
``server_metrics`` (servegate.load.server_metrics' keys) and ``energy`` (servegate.energy's shape), cold-start
phases under ``facts.extra["phases"]`` (as suites/test_cold_start.py writes them), arms. ``main`` checks the
document against the record before writing it.
Run from the repository root:
``python tests/data/results/make_synthetic.py``; the output is deterministic (fixed seed, fixed timestamp).
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from servegate.results import SCHEMA_VERSION, case_status, stats_of, validate_document

OUT = Path(__file__).with_name("synthetic-mi300x-sweep.json")
PCTS = (50.0, 90.0, 99.0)


def dist(rng: random.Random, median: float, spread: float, count: int) -> dict:
    p = {"p50": median, "p90": median * (1 + spread), "p99": median * (1 + 2.5 * spread)}
    return {
        "mean": median * (1 + spread / 3),
        "median": median,
        "std": median * spread,
        "percentiles": {k: v * rng.uniform(0.98, 1.02) for k, v in p.items()},
        "count": count,
    }


def summary(rng: random.Random, conc: int, n_req: int, prompt: int, out: int, success: float) -> dict:
    # A decode-bound server: ITL grows slowly with batch, throughput saturates around 64 concurrent.
    itl = 6.4 * (1 + conc / 48) * rng.uniform(0.97, 1.03)
    ttft = (38 + 9 * conc + 40 * max(0, conc - 96)) * rng.uniform(0.95, 1.05)  # queueing past 96
    e2el = ttft + itl * (out - 1)
    completed = round(n_req * success)
    duration = completed * e2el / 1000 / conc
    out_tps = completed * out / duration
    return {
        "num_requests": n_req,
        "completed": completed,
        "success_rate": completed / n_req,
        "outcomes": {"ok": completed, **({"timeout": n_req - completed} if completed < n_req else {})},
        "duration_s": duration,
        "total_input_tokens": completed * prompt,
        "total_output_tokens": completed * out,
        "request_throughput": completed / duration,
        "output_throughput": out_tps,
        "total_token_throughput": completed * (prompt + out) / duration,
        "goodput": None,
        "ttft": dist(rng, ttft, 0.35, completed),
        "itl": dist(rng, itl, 0.12, completed * (out - 1)),
        "tpot": dist(rng, itl * 1.01, 0.08, completed),
        "e2el": dist(rng, e2el, 0.2, completed),
        "max_send_lag_ms": 0.4,
        "max_loop_lag_ms": 1.2,
        "stopped_early": None,
        "first_errors": [] if completed == n_req else ["#17 timeout: no chunk for 300 s"],
        "server_metrics": server_metrics(rng, conc, completed, prompt, out),
        "energy": energy(rng, conc, duration, completed * out),
    }


def server_metrics(rng: random.Random, conc: int, completed: int, prompt: int, out: int) -> dict:
    """servegate.load.server_metrics' keys: gauge peaks and counter deltas over the level."""
    return {
        "kv_cache_usage_peak": min(1.0, conc * (prompt + out) / 160_000 * rng.uniform(0.95, 1.05)),
        "running_peak": min(conc, 256),
        "waiting_peak": max(0, conc - 96),
        "preemptions": max(0, round((conc - 48) * 1.5 * rng.uniform(0.8, 1.2))),
        "prompt_tokens": completed * prompt,
        "generation_tokens": completed * out,
    }


def energy(rng: random.Random, conc: int, seconds: float, output_tokens: int) -> dict:
    """servegate.energy.energy_result's shape for 8 GPUs whose board power grows with the batch."""
    mean_w = 8 * (310 + 2.2 * min(conc, 96)) * rng.uniform(0.98, 1.02)
    joules = mean_w * seconds
    return {
        "status": "measured",
        "tool": "amd-smi",
        "devices": 8,
        "ticks": max(1, round(seconds / 0.5)),
        "power_mean_w": mean_w,
        "power_peak_w": mean_w * 1.08,
        "energy_j": joules,
        "joules_per_output_token": joules / output_tokens,
        "tokens_per_joule": output_tokens / joules,
    }


def facts(rng: random.Random, cold: bool) -> dict:
    load = 6.2 * rng.uniform(0.9, 1.1) + (41.0 if cold else 0.0)
    comp = 22.0 * rng.uniform(0.9, 1.1) if cold else 3.1 * rng.uniform(0.9, 1.1)
    graphs = 9.5 * rng.uniform(0.9, 1.1)
    kv = 2.1
    return {
        "vllm_version": "0.14.1",
        "engine_init_s": comp + graphs + kv,
        "kv_cache_tokens": 1_184_512,
        "max_concurrency": 72.3,
        "attention_backend": "ROCM_AITER_FA",
        "model_load_s": load,
        "compile_s": comp,
        "time_to_ready_s": load + comp + graphs + kv + 4.0,
        # as suites/test_cold_start.py writes them (servegate.coldstart.cold_start_phases, time to ready left out)
        "extra": {
            "phases": {"process_and_api_s": 4.0, "weight_load_s": load, "compile_and_warmup_s": comp + graphs + kv}
        },
    }


def values_of(starts: list[dict]) -> dict[str, list[float]]:
    flat: dict[str, list[float]] = {}
    for st in starts:
        multi = len(st["levels"]) > 1
        for lv in st["levels"]:
            s = lv["summary"]
            row = {k: s[k] for k in ("request_throughput", "output_throughput", "total_token_throughput")}
            row["success_rate"] = s["success_rate"]
            for name in ("ttft", "itl", "tpot", "e2el"):
                row[f"{name}_mean_ms"] = s[name]["mean"]
                row[f"{name}_median_ms"] = s[name]["median"]
                for p, v in s[name]["percentiles"].items():
                    row[f"{name}_{p}_ms"] = v
            for k, v in row.items():
                flat.setdefault(f"{lv['label']}/{k}" if multi else k, []).append(v)
    return flat


def server(model: str, name: str, env: dict[str, str]) -> dict:
    return {
        "model": model,
        "name": name,
        "served_model_name": None,
        "tokenizer": None,
        "dtype": "bfloat16",
        "quantization": None,
        "kv_cache_dtype": None,
        "attention_backend": "ROCM_AITER_FA",
        "tensor_parallel_size": 1,
        "max_model_len": 8192,
        "max_num_seqs": 256,
        "max_num_batched_tokens": None,
        "block_size": None,
        "load_format": None,
        "enforce_eager": False,
        "kv_cache_memory_bytes": None,
        "extra_args": [],
        "env": {"HF_TOKEN": "***", **env},
        "launcher": "docker",
        "image": "rocm/vllm:rocm7.0_vllm_0.14.1",
        "url": None,
        "startup_timeout_s": 900,
    }


def load(profile: str, levels: list[int], n: int, prompt: int, out: int) -> dict:
    return {
        "name": "",
        "profile": profile,
        "num_requests": n,
        "concurrency": levels[-1],
        "rate": None,
        "burstiness": 1.0,
        "concurrency_levels": levels if len(levels) > 1 else [],
        "prompt_tokens": prompt,
        "output_tokens": out,
        "shared_prefix_tokens": 0,
        "endpoint": "completions",
        "ignore_eos": True,
        "temperature": 0.0,
        "seed": 0,
        "warmup_requests": 4,
        "max_seconds": 600.0,
        "request_timeout_s": 300.0,
        "cooldown_s": 3.0,
        "percentiles": list(PCTS),
        "slo": {"ttft_ms": None, "tpot_ms": None, "e2el_ms": None},
    }


def case(rng: random.Random, case_id: str, srv: dict, ld: dict, restarts: int, speed: float, **extra: object) -> dict:
    levels = ld["concurrency_levels"] or [ld["concurrency"]]
    starts = []
    for i in range(restarts):
        lvls = []
        for c in levels:
            success = 0.93 if c >= 128 else 1.0
            s = summary(rng, c, max(32, 4 * c), ld["prompt_tokens"], ld["output_tokens"], success)
            for key in ("request_throughput", "output_throughput", "total_token_throughput"):
                s[key] *= speed
            lvls.append({"label": f"c{c}", "concurrency": c, "rate": None, "summary": s})
        starts.append(
            {
                "index": i,
                "facts": facts(rng, cold=i == 0),
                "levels": lvls,
                "warmup_s": 1.8,
                "log_path": f"results/logs/{srv['name']}-{i}.log",
            }
        )
    values = values_of(starts)
    return {
        "id": case_id,
        "suite": "serving",
        "hardware": "mi300x",
        "server": srv,
        "server_id": case_id.split("/")[1],
        "load": ld,
        "load_id": case_id.split("/")[2],
        "starts": starts,
        "values": values,
        "stats": stats_of(values),
        "status": case_status(starts, stats_of(values), ld.get("profile", "concurrent")),
        **extra,
    }


def verdict(config_id: str, metric: str, base: float, cur: float, half: float, verdict: str, reason: str) -> dict:
    """A gate row as servegate.gate.Comparison writes it (5 starts each side, δ = 5%, α = 0.05)."""
    ratio = cur / base
    return {
        "config_id": config_id,
        "metric": metric,
        "baseline_mean": base,
        "current_mean": cur,
        "ratio": ratio,
        "ci_low": ratio * math.exp(-half),
        "ci_high": ratio * math.exp(half),
        "verdict": verdict,
        "reason": reason,
        "n_baseline": 5,
        "n_current": 5,
        "tolerance": 0.05,
        "alpha": 0.05,
    }


def main() -> None:
    rng = random.Random(20261123)
    model = "meta-llama/Llama-3.1-8B-Instruct"
    sweep = case(
        rng,
        "mi300x/Llama-3.1-8B-Instruct-bfloat16-ROCM_AITER_FA/sweep-in512-out128",
        server(model, "Llama-3.1-8B-Instruct", {"VLLM_ROCM_USE_AITER": "1"}),
        load("sweep", [1, 2, 4, 8, 16, 32, 64, 128], 256, 512, 128),
        3,
        1.0,
    )
    sweep["gate"] = [
        verdict(sweep["id"], "c64/output_throughput", 5210.0, 5032.0, 0.021, "OK", "ratio CI within δ"),
        verdict(sweep["id"], "c64/ttft_p99_ms", 610.0, 701.0, 0.04, "REGRESSED", "ratio 1.15, CI [1.10, 1.20] > 1.05"),
        verdict(sweep["id"], "c1/itl_median_ms", 6.61, 6.70, 0.05, "INCONCLUSIVE", "CI [0.96, 1.07] spans 1.05"),
        verdict(sweep["id"], "c8/e2el_p99_ms", 1210.0, 1187.0, 0.018, "OK", "ratio CI upper 1.00 ≤ 1.05"),
    ]
    arms = []
    for arm, flag, speed in (("A", "0", 1.0), ("B", "1", 1.04)):
        arms.append(
            case(
                rng,
                f"mi300x/Llama-3.1-8B-Instruct-bfloat16-AITER={flag}/c32-in512-out128",
                server(model, "Llama-3.1-8B-Instruct", {"VLLM_ROCM_USE_AITER": flag}),
                load("concurrent", [32], 128, 512, 128),
                5,
                speed,
                arm=arm,
                ab_group="aiter-ablation",
            )
        )
    pair = f"{arms[1]['id']}: arm B vs arm A"  # the A/B rows: each later arm against the first
    arms[1]["ab"] = [
        verdict(pair, "output_throughput", 2490.0, 2590.0, 0.03, "OK", "B vs A: 4% faster, CI within δ"),
        verdict(pair, "itl_p99_ms", 9.1, 10.2, 0.09, "INCONCLUSIVE", "B vs A: CI [1.02, 1.23] spans 1.05"),
    ]
    doc = {
        "schema_version": SCHEMA_VERSION,
        "servegate_version": "0.1.0",
        "created": "2026-11-23T08:00:00Z",
        "environment": {
            "note": "SYNTHETIC fixture for report tests; nothing here was measured",
            "argv": ["suites/", "-m", "mi300x"],
            "fingerprint": {
                "gpu": "AMD Instinct MI300X",
                "gfx": "gfx942",
                "gpu_count": 8,
                "rocm": "7.0.0",
                "driver": "6.12.12",
                "vllm": "0.14.1",
                "image_digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            },
        },
        "cases": [sweep, *arms],
    }
    problems = validate_document(doc)
    if problems:
        raise SystemExit("not a results record: " + "; ".join(problems[:10]))
    OUT.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(OUT)


if __name__ == "__main__":
    main()
