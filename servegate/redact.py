"""Masking of secrets, applied to every log line, report and baseline we write.

Users run with HF_TOKEN and cloud keys in their environment; a benchmark report is forwarded to whole teams,
so nothing that looks like a credential may reach a file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

MASK = "***"

_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL)", re.I)

# Values with a recognisable shape, wherever they appear (command lines, tracebacks, env dumps).
_SECRET_VALUE = re.compile(
    r"\b(hf_[A-Za-z0-9]{20,}"  # Hugging Face user access token
    r"|sk-[A-Za-z0-9_\-]{20,}"  # OpenAI-style API key
    r"|gh[pousr]_[A-Za-z0-9]{20,}"  # GitHub token
    r"|AKIA[0-9A-Z]{16})\b"  # AWS access key id
)
# NAME=value / "NAME": "value" / --name value pairs whose name says secret.
_SECRET_ASSIGNMENT = re.compile(
    r"""(?P<key>["']?[A-Za-z0-9_\-]*(?:TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|ACCESS_KEY)[A-Za-z0-9_\-]*["']?)"""
    r"""(?P<sep>\s*[=:]\s*|\s+)(?P<quote>["']?)(?P<value>[^\s"',}]+)""",
    re.I,
)


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``env`` with every secret-named variable's value masked."""
    return {k: (MASK if is_secret_name(k) and v else redact_text(v)) for k, v in env.items()}


def redact_text(text: str) -> str:
    """Mask token-shaped values and values assigned to secret-named keys."""
    text = _SECRET_VALUE.sub(MASK, text)

    def _mask(m: re.Match[str]) -> str:
        if m.group("value") == MASK:
            return m.group(0)
        return f"{m.group('key')}{m.group('sep')}{m.group('quote')}{MASK}"

    return _SECRET_ASSIGNMENT.sub(_mask, text)
