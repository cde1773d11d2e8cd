"""What to serve and how to load it: ServerConfig and LoadConfig, the two halves of every benchmark case.

Both are frozen dataclasses with a readable, stable ``id``: ids key the baselines on disk and the pytest test ids,
so changing how an id is built orphans every stored baseline. Suite-file parsing lives in ``servegate.suite``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from servegate.redact import is_secret_name

LauncherKind = Literal["local", "docker", "external"]
Endpoint = Literal["completions", "chat"]
ProfileKind = Literal["synchronous", "concurrent", "constant", "poisson", "gamma", "sweep", "saturation"]

# Request counts are multiplied by these (seed 003 §5.1 "Test Multipliers").
INTENSITY_MULTIPLIERS: dict[str, float] = {"quick": 0.5, "default": 1.0, "thorough": 3.0}

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+-]+")


def slug(text: str) -> str:
    """A filesystem- and pytest-id-safe rendering of ``text`` ("Qwen/Qwen2-VL-72B" -> "Qwen2-VL-72B")."""
    return _ID_UNSAFE.sub("-", text.rstrip("/").rsplit("/", 1)[-1]).strip("-")


@dataclass(frozen=True)
class ServerConfig:
    """One vLLM server: model × precision × attention backend × environment × parallelism × extra flags."""

    model: str
    name: str = ""  # short label for ids; defaults to the model's last path component
    served_model_name: str | None = None
    tokenizer: str | None = None
    dtype: str = "auto"
    quantization: str | None = None
    kv_cache_dtype: str | None = None
    attention_backend: str | None = None
    tensor_parallel_size: int = 1
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    block_size: int | None = None
    load_format: str | None = None
    enforce_eager: bool = False
    kv_cache_memory_bytes: int | None = None
    extra_args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # sorted (key, value) pairs: hashable and order-stable
    launcher: LauncherKind = "local"
    image: str | None = None  # container image for the docker launcher
    url: str | None = None  # base URL for the external launcher
    startup_timeout_s: float = 900.0
    # multi-node: pipeline stages across nodes over a Ray cluster (servegate.launch.cluster)
    pipeline_parallel_size: int = 1
    distributed_executor_backend: Literal["mp", "ray"] | None = None
    ray_address: str | None = None  # head node's GCS address (host:6379); passed to vLLM as RAY_ADDRESS

    def __post_init__(self) -> None:
        if self.pipeline_parallel_size < 1 or self.tensor_parallel_size < 1:
            raise ValueError(
                f"tensor_parallel_size and pipeline_parallel_size must be >= 1, got "
                f"{self.tensor_parallel_size} and {self.pipeline_parallel_size}"
            )
        if self.ray_address and self.distributed_executor_backend != "ray":
            raise ValueError("ray_address needs distributed_executor_backend: ray (vLLM's multi-node path)")

    @property
    def label(self) -> str:
        return self.name or slug(self.model)

    @property
    def model_name(self) -> str:
        """The name requests must send in their ``model`` field."""
        return self.served_model_name or self.model

    @property
    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    @property
    def id(self) -> str:
        """Readable and stable: label, then only what differs from the defaults, in a fixed order."""
        parts = [self.label]
        if self.dtype != "auto":
            parts.append(self.dtype)
        if self.quantization:
            parts.append(self.quantization)
        if self.kv_cache_dtype:
            parts.append(f"kv-{self.kv_cache_dtype}")
        if self.attention_backend:
            parts.append(self.attention_backend)
        if self.tensor_parallel_size != 1:
            parts.append(f"tp{self.tensor_parallel_size}")
        if self.pipeline_parallel_size != 1:
            parts.append(f"pp{self.pipeline_parallel_size}")
        if self.block_size is not None:
            parts.append(f"bs{self.block_size}")
        if self.max_num_seqs is not None:
            parts.append(f"seqs{self.max_num_seqs}")
        if self.max_num_batched_tokens is not None:
            parts.append(f"mbt{self.max_num_batched_tokens}")
        if self.enforce_eager:
            parts.append("eager")
        for key, value in self.env:
            if not is_secret_name(key):  # a token never distinguishes configs, and ids end up in paths and reports
                parts.append(f"{_short_env(key)}={value}")
        return "-".join(slug(p) for p in parts)

    def cli_args(self) -> list[str]:
        """``vllm serve`` flags for this config, without host/port (the launcher owns those)."""
        args = ["--model", self.model]
        optional: list[tuple[str, Any]] = [
            ("--served-model-name", self.served_model_name),
            ("--tokenizer", self.tokenizer),
            ("--quantization", self.quantization),
            ("--kv-cache-dtype", self.kv_cache_dtype),
            ("--attention-backend", self.attention_backend),
            ("--max-model-len", self.max_model_len),
            ("--max-num-seqs", self.max_num_seqs),
            ("--max-num-batched-tokens", self.max_num_batched_tokens),
            ("--block-size", self.block_size),
            ("--load-format", self.load_format),
            ("--kv-cache-memory-bytes", self.kv_cache_memory_bytes),
        ]
        if self.dtype != "auto":
            args += ["--dtype", self.dtype]
        if self.tensor_parallel_size != 1:
            args += ["--tensor-parallel-size", str(self.tensor_parallel_size)]
        if self.pipeline_parallel_size != 1:
            args += ["--pipeline-parallel-size", str(self.pipeline_parallel_size)]
        if self.distributed_executor_backend:
            args += ["--distributed-executor-backend", self.distributed_executor_backend]
        for flag, value in optional:
            if value is not None:
                args += [flag, str(value)]
        if self.enforce_eager:
            args.append("--enforce-eager")
        return args + list(self.extra_args)

    def with_overrides(self, **changes: Any) -> ServerConfig:
        if "env" in changes and isinstance(changes["env"], dict):
            changes["env"] = normalize_env(changes["env"])
        return replace(self, **changes)


def _short_env(key: str) -> str:
    """VLLM_ROCM_USE_AITER_MHA -> AITER_MHA: ids stay short while still naming the switch."""
    for prefix in ("VLLM_ROCM_USE_", "VLLM_"):
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def normalize_env(env: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """Environment as sorted string pairs; YAML booleans become "1"/"0" as vLLM's env parsing expects."""
    if not env:
        return ()
    out = []
    for key, value in env.items():
        if isinstance(value, bool):
            value = "1" if value else "0"
        out.append((str(key), str(value)))
    return tuple(sorted(out))


@dataclass(frozen=True)
class SLO:
    """Service-level objectives for goodput, in milliseconds (as ``vllm bench serve --goodput``)."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2el_ms: float | None = None


@dataclass(frozen=True)
class LoadConfig:
    """One load profile: what requests, how many, and how they are paced."""

    name: str = ""
    profile: ProfileKind = "concurrent"
    num_requests: int = 64
    concurrency: int = 8
    rate: float | None = None  # requests/s for constant, poisson and gamma
    burstiness: float = 1.0  # gamma shape; 1.0 is Poisson
    concurrency_levels: tuple[int, ...] = ()  # for sweep / saturation
    prompt_tokens: int = 128
    output_tokens: int = 64
    shared_prefix_tokens: int = 0
    endpoint: Endpoint = "completions"
    ignore_eos: bool = True
    temperature: float = 0.0
    seed: int = 0
    warmup_requests: int = 4
    max_seconds: float = 600.0
    request_timeout_s: float = 300.0
    cooldown_s: float = 0.0
    percentiles: tuple[float, ...] = (50.0, 90.0, 99.0)
    slo: SLO = field(default_factory=SLO)
    # --- load generator (issue 3); every field has a default so existing suite files keep their meaning ---
    warmup_seconds: float = 0.0  # warm up for this long too (in addition to warmup_requests); excluded from metrics
    sweep_rates: int = 4  # sweep: constant-rate levels between the synchronous and the max-throughput rate
    dataset: Literal["synthetic", "sharegpt", "images"] = "synthetic"
    dataset_path: str | None = None  # ShareGPT-format JSON/JSONL for dataset "sharegpt"
    image_size: tuple[int, int] = (512, 512)  # width, height of synthetic document images (dataset "images")
    images_per_request: int = 1  # dataset "images": images attached to each chat request
    workers: int = 1  # client processes, one event loop each (for hosts where one core cannot keep up)
    client_check: bool = True  # measure the client's ceiling against an instant stub and mark CLIENT-BOUND runs
    scrape_metrics: bool = True  # scrape the server's /metrics before, during and after each level
    scrape_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if self.profile in ("constant", "poisson", "gamma") and not (self.rate and self.rate > 0):
            raise ValueError(f"load profile {self.profile!r} needs rate: requests per second > 0, got {self.rate!r}")
        if self.num_requests < 1 or self.concurrency < 1:
            raise ValueError(f"num_requests and concurrency must be >= 1, got {self.num_requests}, {self.concurrency}")
        if self.dataset == "sharegpt" and not self.dataset_path:
            raise ValueError("dataset 'sharegpt' needs dataset_path: a local ShareGPT-format JSON or JSONL file")
        if self.dataset == "images" and self.endpoint != "chat":
            raise ValueError("dataset 'images' sends images in chat messages: set endpoint: chat")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if not isinstance(self.image_size, tuple):  # a YAML list; a tuple keeps the frozen dataclass hashable
            object.__setattr__(self, "image_size", tuple(self.image_size))

    @property
    def id(self) -> str:
        if self.name:
            return slug(self.name)
        pace = {
            "synchronous": lambda: "sync",
            "concurrent": lambda: f"c{self.concurrency}",
            "constant": lambda: f"r{self.rate:g}",
            "poisson": lambda: f"poisson{self.rate:g}",
            "gamma": lambda: f"gamma{self.rate:g}b{self.burstiness:g}",
            "sweep": lambda: "sweep",
            "saturation": lambda: "saturation",
        }[self.profile]()
        data = "" if self.dataset == "synthetic" else f"-{self.dataset}"  # only non-defaults: old ids stay valid
        return f"{pace}-in{self.prompt_tokens}-out{self.output_tokens}{data}"

    def scaled(self, multiplier: float) -> LoadConfig:
        """Request counts times ``multiplier`` (quick 0.5×, default 1×, thorough 3×), never below one request."""
        return replace(self, num_requests=max(1, round(self.num_requests * multiplier)))


def dataclass_from_mapping(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build ``cls`` from a mapping, rejecting unknown keys with a message that names ``where`` and the allowed keys."""
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return cls(**data)
