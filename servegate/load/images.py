"""Synthetic document images for vision loads: rendered text pages, unique per request, as base64 data URLs.

Rendered locally with Pillow (a matplotlib dependency, so nothing new to install). Each image carries its request
number in the text, so the server's multimodal cache cannot serve a second request from the first one's encoding.
"""

from __future__ import annotations

import base64
import io
import random

from PIL import Image, ImageDraw, ImageFont

_WORDS = [
    "invoice",
    "total",
    "amount",
    "due",
    "date",
    "account",
    "number",
    "quarterly",
    "report",
    "revenue",
    "margin",
    "table",
    "figure",
    "section",
    "summary",
    "customer",
    "address",
    "shipment",
    "order",
    "reference",
    "payment",
    "terms",
    "net",
    "tax",
    "subtotal",
    "balance",
    "page",
    "appendix",
]


def document_image(width: int, height: int, seed: int) -> bytes:
    """A PNG of a text page ``width`` x ``height`` pixels: a title, lines of words, a ruled table."""
    rng = random.Random(seed)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    y = 8
    draw.text((8, y), f"DOCUMENT {seed}", fill="black", font=font)
    y += 20
    while y < height * 0.6:
        line = " ".join(rng.choice(_WORDS) for _ in range(max(1, width // 48)))
        draw.text((8, y), line, fill=(20, 20, 20), font=font)
        y += 14
    cols = 4
    for r in range(int((height - y) // 18)):
        top = y + r * 18
        for c in range(cols):
            left = 8 + c * (width - 16) // cols
            draw.rectangle([left, top, left + (width - 16) // cols, top + 18], outline="gray")
            draw.text((left + 3, top + 3), f"{rng.randint(0, 99999)}", fill="black", font=font)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=False)
    return out.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def image_message(text: str, images: list[bytes]) -> list[dict]:
    """One user turn with the text and the images, in the OpenAI chat format vLLM accepts."""
    content: list[dict] = [{"type": "text", "text": text}]
    content += [{"type": "image_url", "image_url": {"url": data_url(png)}} for png in images]
    return [{"role": "user", "content": content}]
