"""Masking of secrets, applied to every log line, report and baseline we write.

Users run with HF_TOKEN and cloud keys in their environment; a benchmark report is forwarded to whole teams,
so nothing that looks like a credential may reach a file. Names are matched as whole underscore-separated words
(HF_TOKEN, OPENAI_API_KEY, DB_PASSWORD) so that metric names like ``prompt_tokens`` or ``tokenizer`` are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

_NAME_WORD = r"(?:TOKEN|SECRET|SECRET[_-]KEY|PASSWORD|PASSWD|API[_-]?KEY|ACCESS[_-]KEY|PRIVATE[_-]KEY|CREDENTIALS?)"
_SECRET_NAME = re.compile(rf"(?:^|[_\-]){_NAME_WORD}(?:$|[_\-])", re.I)

# Values with a recognisable shape, wherever they appear (command lines, tracebacks, env dumps).
_SECRET_VALUE = re.compile(
    r"\b(hf_[A-Za-z0-9]{20,}"  # Hugging Face user access token
    r"|sk-[A-Za-z0-9_\-]{20,}"  # OpenAI-style API key
    r"|gh[pousr]_[A-Za-z0-9]{20,}"  # GitHub token
    r"|AKIA[0-9A-Z]{16})\b"  # AWS access key id
)
# NAME=value, "NAME": "value" and --name value, where NAME is a secret name.
_SECRET_ASSIGNMENT = re.compile(
    rf"""(?P<key>(?<![A-Za-z0-9])[A-Za-z0-9_\-]*(?:^|[_\-]|\b){_NAME_WORD}(?![A-Za-z0-9])["']?)"""
    r"""(?P<sep>\s*[=:]\s*|\s+)(?P<quote>["']?)(?P<value>[^\s"',}]+)""",
    re.I,
)


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``env`` with every secret-named variable's value masked."""
    return {k: (MASK if is_secret_name(k) and v else redact_text(v)) for k, v in env.items()}


def redact_text(text: str) -> str:
    """Mask token-shaped values and values assigned to secret-named keys (for logs and command lines)."""
    text = _SECRET_VALUE.sub(MASK, text)

    def _mask(m: re.Match[str]) -> str:
        if m.group("value") in (MASK, "null", "None", "none"):
            return m.group(0)
        return f"{m.group('key')}{m.group('sep')}{m.group('quote')}{MASK}"

    return _SECRET_ASSIGNMENT.sub(_mask, text)


def redact_obj(obj: Any) -> Any:
    """A structural copy of a JSON-like document with secrets masked; keeps the document valid JSON."""
    if isinstance(obj, Mapping):
        return {
            k: (MASK if isinstance(k, str) and is_secret_name(k) and isinstance(v, str) and v else redact_obj(v))
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):  # an argv: the item after "--api-key" is the secret
        out: list[Any] = []
        for i, v in enumerate(obj):
            prev = obj[i - 1] if i else None
            flag = isinstance(prev, str) and prev.startswith("-") and is_secret_name(prev.lstrip("-"))
            out.append(MASK if flag and isinstance(v, str) else redact_obj(v))
        return out
    if isinstance(obj, str):
        return redact_text(obj)
    return obj
