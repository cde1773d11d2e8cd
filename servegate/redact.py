"""Masking of secrets, applied to every log line, report and baseline we write.

Users run with HF_TOKEN and cloud keys in their environment; a benchmark report is forwarded to whole teams,
so nothing that looks like a credential may reach a file. Names are matched as whole underscore-separated words
(HF_TOKEN, OPENAI_API_KEY, DB_PASSWORD) so that metric names like ``prompt_tokens`` or ``tokenizer`` are left alone.

Shapes (``hf_…``, ``sk-…``) are not enough: a token in an unusual format, or printed by a server without its
name beside it, is only recognisable by its value. So the *values* of secret-named variables actually present
(this process's environment, and every suite file's ``env:``, registered with ``register_secret``) are masked
wherever they appear.
"""

from __future__ import annotations

import os
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


# Shorter values would mask ordinary text ("1", "true"); a credential is never this short.
MIN_SECRET_LENGTH = 6
_registered: set[str] = set()


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def register_secret(value: str) -> None:
    """Mask ``value`` from now on in everything this process writes (e.g. a token from a suite file's env)."""
    if len(value) >= MIN_SECRET_LENGTH:
        _registered.add(value)


def secret_values() -> list[str]:
    """Values to mask: registered ones and secret-named variables of the environment now, longest first (so a
    secret containing another is masked whole)."""
    found = set(_registered)
    found.update(v for k, v in os.environ.items() if is_secret_name(k) and len(v) >= MIN_SECRET_LENGTH)
    return sorted(found, key=len, reverse=True)


def is_secret_value(value: str) -> bool:
    return value in secret_values() or bool(_SECRET_VALUE.fullmatch(value))


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``env`` with every secret-named variable's value masked."""
    return {k: (MASK if is_secret_name(k) and v else redact_text(v)) for k, v in env.items()}


def redact_text(text: str) -> str:
    """Mask known secret values, token-shaped values and values assigned to secret-named keys."""
    for value in secret_values():
        text = text.replace(value, MASK)
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
