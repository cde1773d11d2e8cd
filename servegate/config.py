"""What to serve and how to load it: ServerConfig and LoadConfig, the two halves of every benchmark case.

Both are frozen dataclasses with a readable, stable ``id``: ids key the baselines on disk and the pytest test ids,
so changing how an id is built orphans every stored baseline. Suite-file parsing lives in ``servegate.suite``.

They are pydantic dataclasses in strict mode: every construction (suite file, ``replace``, ``scaled``) is
validated, so ``enforce_eager: "no"`` or ``num_requests: "64"`` is refused instead of being coerced into a
different experiment, and the same field declarations give the suite file's JSON Schema.
"""

from __future__ import annotations

import re
from dataclasses import field, fields, replace
from typing import Annotated, Any, Literal, get_args

from pydantic import ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass

from servegate.redact import MASK, is_secret_name, is_secret_value

LauncherKind = Literal["local", "docker", "external"]
Endpoint = Literal["completions", "chat"]
ProfileKind = Literal[
    "synchronous", "concurrent", "constant", "poisson", "gamma", "sweep", "saturation", "capacity", "trace", "multiturn"
]
RequestStyle = Literal["servegate", "vllm-bench"]
REQUEST_STYLES: tuple[str, ...] = get_args(RequestStyle)

# Request counts are multiplied by these (seed 003 §5.1 "Test Multipliers").
INTENSITY_MULTIPLIERS: dict[str, float] = {"quick": 0.5, "default": 1.0, "thorough": 3.0}

# strict: no str -> int / str -> bool coercion; extra="forbid": a misspelt key is an error, not a default.
STRICT = ConfigDict(strict=True, extra="forbid")
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Percentile = Annotated[float, Field(gt=0, le=100)]

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+-]+")


def slug(text: str) -> str:
    """A filesystem- and pytest-id-safe rendering of ``text`` ("Qwen/Qwen2-VL-72B" -> "Qwen2-VL-72B")."""
    return _ID_UNSAFE.sub("-", text.rstrip("/").rsplit("/", 1)[-1]).strip("-")


@dataclass(frozen=True, config=STRICT)
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
    tensor_parallel_size: PositiveInt = 1
    max_model_len: PositiveInt | None = None
    max_num_seqs: PositiveInt | None = None
    max_num_batched_tokens: PositiveInt | None = None
    block_size: PositiveInt | None = None
    load_format: str | None = None
    enforce_eager: bool = False
    kv_cache_memory_bytes: PositiveInt | None = None
    extra_args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # sorted (key, value) pairs: hashable and order-stable
    launcher: LauncherKind = "local"
    image: str | None = None  # container image for the docker launcher
    url: str | None = None  # base URL for the external launcher
    startup_timeout_s: PositiveFloat = 900.0
    # multi-node: pipeline stages across nodes over a Ray cluster (servegate.launch.cluster)
    pipeline_parallel_size: PositiveInt = 1
    distributed_executor_backend: Literal["mp", "ray"] | None = None
    ray_address: str | None = None  # head node's GCS address (host:6379); passed to vLLM as RAY_ADDRESS

    def __post_init__(self) -> None:
        if self.ray_address and self.distributed_executor_backend != "ray":
            raise ValueError("ray_address needs distributed_executor_backend: ray (vLLM's multi-node path)")

    def __repr__(self) -> str:
        """Only fields that differ from the defaults, env values of secrets masked: pytest prints this repr in
        tracebacks and test ids, which end up in CI logs."""
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            if f.name == "env":
                value = tuple((k, MASK if is_secret_name(k) or is_secret_value(v) else v) for k, v in value)
            shown.append(f"{f.name}={value!r}")
        return f"ServerConfig({', '.join(shown)})"

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


@dataclass(frozen=True, config=STRICT)
class SLO:
    """Service-level objectives for goodput, in milliseconds (as ``vllm bench serve --goodput``)."""

    ttft_ms: PositiveFloat | None = None
    tpot_ms: PositiveFloat | None = None
    e2el_ms: PositiveFloat | None = None


@dataclass(frozen=True, config=STRICT)
class LoadConfig:
    """One load profile: what requests, how many, and how they are paced."""

    name: str = ""
    profile: ProfileKind = "concurrent"
    num_requests: PositiveInt = 64
    concurrency: PositiveInt = 8
    rate: PositiveFloat | None = None  # requests/s for constant, poisson and gamma
    burstiness: PositiveFloat = 1.0  # gamma shape; 1.0 is Poisson
    concurrency_levels: tuple[PositiveInt, ...] = ()  # for sweep / saturation
    prompt_tokens: PositiveInt = 128
    output_tokens: PositiveInt = 64
    shared_prefix_tokens: NonNegativeInt = 0
    endpoint: Endpoint = "completions"
    ignore_eos: bool = True
    temperature: NonNegativeFloat = 0.0
    seed: int = 0
    warmup_requests: NonNegativeInt = 4
    max_seconds: PositiveFloat = 600.0
    request_timeout_s: PositiveFloat = 300.0
    cooldown_s: NonNegativeFloat = 0.0
    percentiles: tuple[Percentile, ...] = (50.0, 90.0, 99.0)
    slo: SLO = field(default_factory=SLO)
    # --- load generator (issue 3); every field has a default so existing suite files keep their meaning ---
    warmup_seconds: NonNegativeFloat = 0.0  # warm up this long too (besides warmup_requests); not measured
    sweep_rates: PositiveInt = 4  # sweep: constant-rate levels between the synchronous and the max-throughput rate
    dataset: Literal["synthetic", "sharegpt", "images", "mooncake"] = "synthetic"
    dataset_path: str | None = None  # ShareGPT-format JSON/JSONL for dataset "sharegpt"
    image_size: tuple[PositiveInt, PositiveInt] = (512, 512)  # width, height of synthetic images (dataset "images")
    images_per_request: PositiveInt = 1  # dataset "images": images attached to each chat request
    workers: PositiveInt = 1  # client processes, one event loop each (for hosts where one core cannot keep up)
    client_check: bool = True  # measure the client's ceiling against an instant stub and mark CLIENT-BOUND runs
    scrape_metrics: bool = True  # scrape the server's /metrics before, during and after each level
    scrape_interval_s: PositiveFloat = 1.0
    # Request bodies: "servegate" pins decoding (temperature, per-request seed, ignore_eos) so that every start
    # generates the same work; "vllm-bench" sends exactly what ``vllm bench serve`` sends (no temperature, no seed,
    # repetition_penalty 1.0, ignore_eos only when set) and pools ITL per event as it does (events coalesced into
    # one read give gaps of ~0), for comparing numbers with that tool.
    request_style: RequestStyle = "servegate"
    # --- workloads (capacity, Pareto, steady state, trace replay, multi-turn) ---
    slo_limits: tuple[tuple[str, float], ...] = ()  # capacity: (RunSummary.flat() name, upper/lower bound) pairs
    cliff_factor: PositiveFloat = 3.0  # capacity: a limited metric growing by this factor across one level is a cliff
    pareto_interactivity: PositiveFloat | None = None  # tokens/s per user at which to read throughput per GPU
    steady_state: bool = False  # measure only the detected steady window (warmup and cool-down edges trimmed)
    oversaturation_stop: bool = False  # sweep/saturation: stop climbing once a level's queue grows without bound
    trace_block_tokens: PositiveInt = 512  # trace replay: tokens per hash_id block (mooncake uses 512)
    trace_time_scale: PositiveFloat = 1.0  # trace replay: multiply the trace's timestamps (0.5 = twice as fast)
    turns: PositiveInt = 3  # multi-turn synthetic conversations: user turns per conversation

    def __post_init__(self) -> None:
        if self.profile in ("constant", "poisson", "gamma") and not (self.rate and self.rate > 0):
            raise ValueError(f"load profile {self.profile!r} needs rate: requests per second > 0, got {self.rate!r}")
        if self.dataset == "sharegpt" and not self.dataset_path:
            raise ValueError("dataset 'sharegpt' needs dataset_path: a local ShareGPT-format JSON or JSONL file")
        if self.dataset == "images" and self.endpoint != "chat":
            raise ValueError("dataset 'images' sends images in chat messages: set endpoint: chat")
        if self.profile == "capacity" and not (self.slo_limits and len(self.concurrency_levels) >= 2):
            raise ValueError("profile 'capacity' needs slo_limits (metric -> bound) and >= 2 concurrency_levels")
        if self.profile == "trace" and not (self.dataset == "mooncake" and self.dataset_path):
            raise ValueError("profile 'trace' replays a Mooncake JSONL file: set dataset: mooncake and dataset_path")
        if self.profile == "trace" and self.endpoint != "completions":
            raise ValueError("profile 'trace' sends token-id prompts (hash_id blocks): set endpoint: completions")
        if self.dataset == "mooncake" and self.profile != "trace":
            raise ValueError("dataset 'mooncake' carries its own schedule: set profile: trace")
        if self.profile == "multiturn" and self.endpoint != "chat":
            raise ValueError("profile 'multiturn' resends the conversation as chat messages: set endpoint: chat")

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
            "capacity": lambda: "capacity",
            "trace": lambda: "trace",
            "multiturn": lambda: f"multiturn-u{self.concurrency}",
        }[self.profile]()
        data = "" if self.dataset == "synthetic" else f"-{self.dataset}"  # only non-defaults: old ids stay valid
        style = "" if self.request_style == "servegate" else f"-{self.request_style}"  # other work, other baseline
        return f"{pace}-in{self.prompt_tokens}-out{self.output_tokens}{data}{style}"

    def scaled(self, multiplier: float) -> LoadConfig:
        """Request counts times ``multiplier`` (quick 0.5×, default 1×, thorough 3×), never below one request."""
        return replace(self, num_requests=max(1, round(self.num_requests * multiplier)))


def dataclass_from_mapping(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build ``cls`` from a mapping; any invalid field is a ``ValueError`` naming ``where``, the key, the value
    given and what is allowed (one line per problem, no pydantic URLs)."""
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    try:
        return cls(**data)
    except ValidationError as exc:
        raise ValueError(validation_message(exc, where)) from None


def validation_message(exc: ValidationError, where: str) -> str:
    """``where.key: given 'x'; expected <what pydantic allows>`` for every error of ``exc``."""
    lines = []
    for err in exc.errors(include_url=False):
        key = where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        given = err.get("input")
        if err["type"] == "value_error":  # a __post_init__ check: its message already says what is allowed
            lines.append(f"{key}: {err['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"{key}: got {given!r} ({type(given).__name__}); expected {_expected(err)}")
    return "\n".join(lines)


def _expected(err: Any) -> str:
    """pydantic's 'Input should be ...' without the prefix: 'a valid integer', "'local', 'docker' or 'external'"."""
    msg = str(err["msg"])
    for prefix in ("Input should be ", "Value should be "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg[:1].lower() + msg[1:]
